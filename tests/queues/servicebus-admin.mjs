// The HTTP API of the Service Bus fake (servicebus-server.mjs), apart so
// that each file reads alone: it creates entities, sends, and shows state.
import { randomUUID } from "node:crypto";
import http from "node:http";

// adminServer serves the fake's entities and counters (fake: its state and
// the functions that change it).
export function adminServer(fake) {
  const { entities, stats, norm, topic, subscription, publish, holdsLock, forget, amqp } = fake;
  // HTTP API, JSON:
  //   PUT  /topics/<t>                                     create a topic
  //   PUT  /topics/<t>/subscriptions/<s>?lockDurationMs=&maxDeliveryCount=
  //   POST /topics/<t>/messages                            send the request body
  //   GET  /topics/<t>/subscriptions/<s>                   the messages, dead-lettered too
  //   POST /topics/<t>/subscriptions/<s>/detach            detach its receivers' links
  //   GET  /stats                                          counters
  function show(m, state) {
    const msg = amqp.decode(m.rest);
    const body = msg.body && msg.body.content !== undefined ? msg.body.content : msg.body;
    return {
      sequenceNumber: m.seq, state: state || m.state, deliveryCount: m.deliveryCount,
      lockedUntil: m.state === "locked" ? m.lockedUntil : null,
      lockToken: m.lockToken && m.lockToken.toString("hex").replace(/(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-"),
      body: Buffer.isBuffer(body) ? body.toString("utf8") : typeof body === "string" ? body : JSON.stringify(body),
      applicationProperties: msg.application_properties || {},
      deadLetterReason: m.deadLetterReason,
    };
  }

  function route(req, body) {
    const url = new URL(req.url, "http://x");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const q = url.searchParams;
    if (req.method === "GET" && url.pathname === "/stats") return [200, stats];
    if (parts[0] !== "topics" || parts.length < 2) return [404, { error: "no such route" }];
    const t = entities.get(norm(parts[1]));
    if (req.method === "PUT" && parts.length === 2) return [201, { topic: topic(parts[1]).topic }];
    if (req.method === "PUT" && parts[2] === "subscriptions" && parts.length === 4) {
      const s = subscription(parts[1], parts[3], Number(q.get("lockDurationMs") || 60000), Number(q.get("maxDeliveryCount") || 10));
      return [201, { path: s.path, lockDurationMs: s.lockMs, maxDeliveryCount: s.maxDelivery }];
    }
    if (!t || !t.subs) return [404, { error: `no topic ${parts[1]}` }];
    if (req.method === "POST" && parts[2] === "messages" && parts.length === 3) {
      publish(t, amqp.encode({ message_id: randomUUID(), body: amqp.data_section(body) }));
      return [201, {}];
    }
    const s = parts[2] === "subscriptions" && t.subs.get(norm(parts[3] || ""));
    if (req.method === "POST" && s && parts[4] === "detach" && parts.length === 5) {
      // Service Bus detaches idle or moved links; their locks stay.
      const error = { condition: "amqp:link:detach-forced", description: "detached by the test" };
      [...s.links, ...s.dlq.links].forEach((l) => { forget(l); l.close(error); stats.detached++; });
      return [200, {}];
    }
    if (req.method === "GET" && s && parts.length === 4) {
      for (const e of [s, s.dlq]) e.messages.forEach((m) => m.state === "locked" && holdsLock(e, m, m.lockKey)); // expire due locks now
      const messages = [...s.messages.values()].map((m) => show(m));
      s.dlq.messages.forEach((m) => messages.push(show(m, "deadlettered")));
      return [200, { path: s.path, lockDurationMs: s.lockMs, maxDeliveryCount: s.maxDelivery, messages }];
    }
    return [404, { error: "no such route or entity" }];
  }

  return http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let status, out;
      try {
        [status, out] = route(req, Buffer.concat(chunks));
      } catch (err) {
        [status, out] = [500, { error: String(err && err.stack) }];
      }
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });
}
