// The Azure Service Bus fake of the Go tests (StartServiceBus): the AMQP 1.0
// contract Service Bus documents, as the azservicebus SDK (and so gocloud's
// azuresb driver) speaks it, on rhea. Microsoft's own emulator needs Docker.
//
// Topics fan out to subscriptions, received in peek-lock mode: locks that
// expire, renew-lock and update-disposition on <entity>/$management,
// settlement by disposition (accepted completes, modified abandons,
// released puts back without counting a delivery, rejected dead-letters),
// CBS put-token accepted blindly. An HTTP API creates entities and shows
// their state (servicebus-admin.mjs). Prints one line,
// "listening amqp://127.0.0.1:<port> http://127.0.0.1:<port>", then writes
// only errors, on stderr. Exits when stdin closes: the Go test that started
// it holds a pipe open, so the server dies with the test binary however
// that ends.
import { randomUUID } from "node:crypto";
import rhea from "rhea";

import { adminServer } from "./servicebus-admin.mjs";

const { types, message: amqp } = rhea;
const lockLost = {
  condition: "com.microsoft:message-lock-lost",
  description: "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
};
const stats = { deliveries: 0, completes: 0, abandons: 0, releases: 0, deadLetters: 0, defers: 0, expiries: 0,
  lockLost: 0, renewCalls: 0, locksRenewed: 0, managementSettles: 0, detached: 0, putTokens: 0 };

// entities by lower-cased path (Service Bus names are case-insensitive):
// topics {topic, subs}, subscriptions and their dead-letter queues (both
// "queues": what receivers lock messages from).
const entities = new Map();
const norm = (path) => path.toLowerCase().replace(/^\/+|\/+$/g, "");

function topic(name) {
  const key = norm(name);
  if (!entities.has(key)) entities.set(key, { topic: name, subs: new Map(), seq: 0 });
  return entities.get(key);
}

function newQueue(path, lockMs, maxDelivery) {
  return { path, lockMs, maxDelivery, messages: new Map(), locks: new Map(), links: new Set() };
}

function subscription(topicName, sub, lockMs, maxDelivery) {
  const t = topic(topicName);
  const path = `${topicName}/Subscriptions/${sub}`;
  let q = entities.get(norm(path));
  if (!q) {
    q = newQueue(path, lockMs, maxDelivery);
    q.dlq = newQueue(`${path}/$deadletterqueue`, lockMs, Infinity);
    q.dlq.dlq = q.dlq; // dead-lettering there leaves a message where it is
    entities.set(norm(path), q);
    entities.set(norm(q.dlq.path), q.dlq);
    t.subs.set(norm(sub), q);
  }
  q.lockMs = q.dlq.lockMs = lockMs;
  q.maxDelivery = maxDelivery;
  return q;
}

// Messages are kept as the sections the sender encoded, so that properties
// and application properties reach receivers with their AMQP types; only
// the header and the message annotations are rewritten per delivery.
const sectionCodes = { "amqp:header:list": 0x70, "amqp:delivery-annotations:map": 0x71,
  "amqp:message-annotations:map": 0x72, "amqp:properties:list": 0x73 };

function parse(raw) {
  const m = { header: {}, annotations: [], props: null, rest: [] };
  const r = new types.Reader(raw);
  while (r.remaining()) {
    const start = r.position;
    const s = r.read();
    const d = s.descriptor && s.descriptor.value;
    const code = typeof d === "string" ? sectionCodes[d] : Number(d);
    const bytes = raw.subarray(start, r.position);
    if (code === 0x70) m.header = amqp.decode(bytes);
    else if (code === 0x72) m.annotations = s.value; // [key, value, ...], typed
    else if (code === 0x73) m.props = bytes;
    else if (code !== 0x71) m.rest.push(bytes);
  }
  m.rest = Buffer.concat(m.rest);
  if (!m.props) m.props = encode(amqp.properties({ message_id: randomUUID() }).described());
  return m;
}

function encode(...typed) {
  const w = new types.Writer();
  typed.forEach((t) => w.write(t));
  return w.toBuffer();
}

// A message the client sent to a topic (raw, as it came) is copied to
// each subscription, with the sequence number and time Service Bus stamps.
function publish(t, raw) {
  const parsed = parse(raw);
  const seq = ++t.seq;
  for (const q of t.subs.values()) {
    q.messages.set(seq, { ...parsed, seq, enqueued: Date.now(), state: "available", deliveryCount: 0 });
    pump(q);
  }
}

const ours = new Set(["x-opt-lock-token", "x-opt-locked-until", "x-opt-sequence-number", "x-opt-enqueued-time"]);

function deliveryPayload(m) {
  const { durable, priority, ttl } = m.header;
  const header = amqp.header({ durable, priority, ttl, delivery_count: m.deliveryCount }).described();
  const items = [];
  for (let i = 0; i + 1 < m.annotations.length; i += 2) {
    if (!ours.has(String(m.annotations[i].value))) items.push(m.annotations[i], m.annotations[i + 1]);
  }
  items.push(types.wrap_symbol("x-opt-lock-token"), types.wrap_uuid(m.lockToken),
    types.wrap_symbol("x-opt-locked-until"), types.wrap_timestamp(m.lockedUntil),
    types.wrap_symbol("x-opt-sequence-number"), types.Long(m.seq),
    types.wrap_symbol("x-opt-enqueued-time"), types.wrap_timestamp(m.enqueued));
  const annotations = types.described(types.wrap_ulong(0x72), types.Map32(items));
  return Buffer.concat([encode(header, annotations), m.props, m.rest]);
}

// The delivery tag is the lock token in .NET's GUID byte order (the first
// three fields little-endian): azservicebus swaps it back into the RFC 4122
// order its LockToken and renew-lock requests use.
function dotnetGUID(token) {
  const b = Buffer.from(token);
  [b[0], b[1], b[2], b[3]] = [token[3], token[2], token[1], token[0]];
  [b[4], b[5], b[6], b[7]] = [token[5], token[4], token[7], token[6]];
  return b;
}

// room is how many more messages link may be sent: rhea counts credit down
// only when its session writes a transfer, after this tick.
function room(link) {
  const next = link.session.outgoing.next_pending_delivery;
  link.sb.unsent = link.sb.unsent.filter((d) => d.id >= next);
  return link.is_open() ? link.credit - link.sb.unsent.length : 0;
}

// pump hands the queue's available messages, oldest first, to its
// receivers in turn while they have credit.
function pump(q) {
  for (const m of q.messages.values()) {
    if (m.state !== "available") continue;
    const link = [...q.links].find((l) => room(l) > 0);
    if (!link) return;
    q.links.delete(link); // to the back of the line
    q.links.add(link);
    deliver(q, m, link);
  }
}

function deliver(q, m, link) {
  m.lockToken = Buffer.from(randomUUID().replace(/-/g, ""), "hex");
  m.lockKey = m.lockToken.toString("hex");
  m.state = "locked";
  q.locks.set(m.lockKey, m);
  lockFor(q, m, q.lockMs);
  const d = link.send(deliveryPayload(m), dotnetGUID(m.lockToken), 0);
  d.sb = { q, m, lockKey: m.lockKey };
  link.sb.unsent.push(d);
  stats.deliveries++;
}

function lockFor(q, m, ms) {
  m.lockedUntil = Date.now() + ms;
  expireLater(q, m);
}

// expireLater ends m's lock when due; holdsLock checks it is due (a timer
// may fire a millisecond early) and whether it still holds at all.
function expireLater(q, m) {
  const key = m.lockKey;
  clearTimeout(m.timer);
  m.timer = setTimeout(() => holdsLock(q, m, key) && expireLater(q, m), Math.max(1, m.lockedUntil - Date.now() + 1));
}

// holdsLock is whether lockKey still locks m, expiring the lock first if
// its time is up: the message is back with one more delivery counted, or
// dead-lettered past the queue's maxDeliveryCount.
function holdsLock(q, m, lockKey) {
  if (m.state !== "locked" || m.lockKey !== lockKey || q.messages.get(m.seq) !== m) return false;
  if (Date.now() < m.lockedUntil) return true;
  stats.expiries++;
  putBack(q, m, 1);
  return false;
}

function unlock(q, m) {
  clearTimeout(m.timer);
  q.locks.delete(m.lockKey);
  m.lockKey = m.lockToken = m.lockedUntil = m.timer = undefined;
}

function putBack(q, m, counted) {
  unlock(q, m);
  m.deliveryCount += counted;
  if (m.deliveryCount >= q.maxDelivery) {
    deadLetter(q, m, "MaxDeliveryCountExceeded", `Message could not be consumed after ${q.maxDelivery} delivery attempts.`);
  } else {
    m.state = "available";
  }
  pump(q);
}

function deadLetter(q, m, reason, description) {
  unlock(q, m);
  q.messages.delete(m.seq);
  Object.assign(m, { state: "available", deadLetterReason: reason, deadLetterDescription: description });
  q.dlq.messages.set(m.seq, m);
  stats.deadLetters++;
  pump(q.dlq);
}

// settle applies a settlement to m, whose lock the caller checked:
// "completed", "abandoned", "suspended" (dead-letter), "defered" (Service
// Bus's spelling), or "released".
function settle(q, m, how, reason, description) {
  switch (how) {
    case "completed":
      unlock(q, m);
      q.messages.delete(m.seq);
      stats.completes++;
      break;
    case "abandoned":
      stats.abandons++;
      putBack(q, m, 1);
      break;
    case "released":
      stats.releases++;
      putBack(q, m, 0);
      break;
    case "suspended":
      deadLetter(q, m, reason, description);
      break;
    case "defered":
      unlock(q, m);
      m.state = "deferred";
      stats.defers++;
      break;
  }
  pump(q);
}

// A receiver's disposition (receiver-settle-mode second): applied if the
// lock holds, then settled back with the same outcome, or rejected with
// message-lock-lost, which azservicebus reports as CodeLockLost.
function onOutcome(context) {
  const d = context.delivery;
  // A link detached (DetachReceivers) settles nothing more, even what was
  // on its way: the client finds the link gone and settles on $management.
  if (!d.sb || d.sb.done || !d.remote_state || !d.link.sb) return;
  d.sb.done = true;
  const { q, m, lockKey } = d.sb;
  const outcome = d.remote_state;
  const kind = outcome.constructor.composite_type;
  if (!holdsLock(q, m, lockKey)) {
    stats.lockLost++;
    return settleBack(d, amqp.rejected({ error: lockLost }).described());
  }
  if (kind === "accepted") settle(q, m, "completed");
  else if (kind === "released") settle(q, m, "released");
  else if (kind === "modified") settle(q, m, outcome.undeliverable_here ? "defered" : "abandoned");
  else if (kind === "rejected") {
    const info = (outcome.error && outcome.error.info) || {};
    settle(q, m, "suspended", info.DeadLetterReason, info.DeadLetterErrorDescription);
  }
  settleBack(d, amqp[kind]().described());
}

// settleBack settles d, final: the receiver settled when it sent its
// disposition, but rhea keeps a delivery (and every later one of its
// session) until it sees both ends settled.
function settleBack(d, state) {
  d.update(true, state);
  d.remote_settled = true;
}

// Request-response nodes ($cbs, <entity>/$management): the reply goes on
// the connection's link whose target is the request's reply-to.
function reply(context, status, description, body) {
  const req = context.message;
  const link = context.connection.sbReplies && context.connection.sbReplies.get(req.reply_to);
  if (!link) {
    console.error(`no reply link ${req.reply_to} for ${JSON.stringify(req.application_properties)}`);
    return;
  }
  link.send({
    correlation_id: req.message_id,
    application_properties: { "status-code": types.wrap_int(status), "status-description": description },
    body,
  });
}

function tokensOf(req) {
  return ((req.body && req.body["lock-tokens"]) || []).map((t) => Buffer.from(t).toString("hex"));
}

function management(context, q) {
  const req = context.message;
  const op = req.application_properties && req.application_properties.operation;
  const keys = tokensOf(req);
  if (!q.locks || (op !== "com.microsoft:renew-lock" && op !== "com.microsoft:update-disposition")) {
    return reply(context, 501, `operation ${op} is not supported by this fake`);
  }
  // Service Bus fails the whole request on one lost lock.
  const held = keys.map((k) => q.locks.get(k));
  if (!held.every((m, i) => m && holdsLock(q, m, keys[i]))) {
    stats.lockLost++;
    return reply(context, 410, lockLost.description);
  }
  if (op === "com.microsoft:renew-lock") {
    stats.renewCalls++;
    stats.locksRenewed += held.length;
    held.forEach((m) => lockFor(q, m, q.lockMs));
    const expirations = types.wrap_array(held.map((m) => m.lockedUntil), 0x83);
    return reply(context, 200, "OK", types.wrap_map({ expirations }));
  }
  const b = req.body;
  if (!["completed", "abandoned", "suspended", "defered"].includes(b["disposition-status"])) {
    return reply(context, 400, `unknown disposition-status ${b["disposition-status"]}`);
  }
  stats.managementSettles += held.length;
  held.forEach((m) => settle(q, m, b["disposition-status"], b["deadletter-reason"], b["deadletter-description"]));
  reply(context, 200, "OK");
}

const mgmtSuffix = "/$management";
const container = rhea.create_container({ id: "servicebus-fake" });
container.sasl_server_mechanisms.enable_anonymous();
container.sasl_server_mechanisms.enable_plain(() => true);

// refuse answers an attach to an unknown entity as Service Bus does: an
// attach without terminus, then a detach with amqp:not-found.
function refuse(link, address) {
  link.close({ condition: "amqp:not-found", description: `The messaging entity '${address}' could not be found.` });
}

function accept(context, link) {
  (context.connection.sbLinks ??= new Set()).add(link);
  const a = link.remote.attach;
  link.local.attach.snd_settle_mode = a.snd_settle_mode;
  link.local.attach.rcv_settle_mode = a.rcv_settle_mode;
  // Fresh termini: rhea's decoded ones carry their raw field lists along.
  link.set_source({ address: a.source && a.source.address });
  link.set_target({ address: a.target && a.target.address });
}

// The client receives: from a subscription (or its dead-letter queue), or
// the replies of $cbs or of an entity's $management node.
container.on("sender_open", (context) => {
  const link = context.sender;
  const source = (link.remote.attach.source && link.remote.attach.source.address) || "";
  const key = norm(source);
  if (key === "$cbs" || key.endsWith(mgmtSuffix)) {
    if (key !== "$cbs" && !entities.has(key.slice(0, -mgmtSuffix.length))) return refuse(link, source);
    accept(context, link);
    const target = link.remote.attach.target && link.remote.attach.target.address;
    (context.connection.sbReplies ??= new Map()).set(target, link);
    link.sb = { reply: target };
    return;
  }
  const q = entities.get(key);
  if (!q || !q.links) return refuse(link, source);
  accept(context, link);
  link.sb = { q, unsent: [] };
  q.links.add(link);
});

// The client sends: to a topic, or requests to $cbs or a $management node.
container.on("receiver_open", (context) => {
  const link = context.receiver;
  const target = (link.remote.attach.target && link.remote.attach.target.address) || "";
  const key = norm(target);
  if (key === "$cbs") {
    link.sb = { cbs: true };
  } else if (key.endsWith(mgmtSuffix)) {
    const e = entities.get(key.slice(0, -mgmtSuffix.length));
    if (!e) return refuse(link, target);
    link.sb = { mgmt: e };
  } else {
    const e = entities.get(key);
    if (!e || !e.subs) return refuse(link, target);
    link.sb = { topic: e };
  }
  accept(context, link);
  // Service Bus's Standard tier takes messages of up to 256 KB, and says so
  // on the attach: the client refuses a bigger one before sending it.
  if (link.sb.topic) link.local.attach.max_message_size = 256 * 1024;
});

// rhea accepts each incoming message before this runs (autoaccept).
container.on("message", (context) => {
  const sb = context.receiver.sb;
  if (!sb) return;
  if (sb.cbs) {
    stats.putTokens++;
    reply(context, 202, "Accepted");
  } else if (sb.mgmt) management(context, sb.mgmt);
  else publish(sb.topic, context.message.sbRaw);
});

// Keep the raw bytes of each message: publish copies them as they came.
const decode = amqp.decode;
amqp.decode = (buf) => Object.defineProperty(decode(buf), "sbRaw", { value: buf });

for (const kind of ["accepted", "released", "rejected", "modified"]) container.on(kind, onOutcome);
container.on("sender_flow", (context) => {
  const link = context.sender;
  if (!link.sb || !link.sb.q) return;
  pump(link.sb.q);
  if (link._draining) link.set_drained(room(link) > 0); // nothing left to send
});

function forget(link) {
  if (!link.sb) return;
  if (link.sb.q) link.sb.q.links.delete(link);
  if (link.sb.reply && link.connection.sbReplies) link.connection.sbReplies.delete(link.sb.reply);
  link.sb = undefined;
}
function forgetAll(context) {
  (context.connection.sbLinks || []).forEach(forget);
  context.connection.sbLinks = undefined;
}
container.on("sender_close", (c) => forget(c.sender));
container.on("receiver_close", (c) => forget(c.receiver));
container.on("session_close", (c) => Object.values(c.session.links).forEach(forget));
container.on("connection_close", forgetAll);
container.on("disconnected", forgetAll);
container.on("error", (err) => console.error("amqp:", err && (err.stack || err.message)));
container.on("protocol_error", (err) => console.error("amqp protocol:", err && err.message));

const admin = adminServer({ entities, stats, norm, topic, subscription, publish, holdsLock, forget, amqp });
const server = container.listen({ host: "127.0.0.1", port: 0, session_buffer_size: 1 << 16, treat_modified_as_released: false });
await new Promise((resolve) => server.on("listening", resolve));
await new Promise((resolve) => admin.listen(0, "127.0.0.1", resolve));
console.log(`listening amqp://127.0.0.1:${server.address().port} http://127.0.0.1:${admin.address().port}`);
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
