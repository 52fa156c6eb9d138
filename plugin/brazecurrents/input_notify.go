package brazecurrents

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/driverlog"
	"github.com/currents-connect/currents-connect/internal/subscription"

	// The queue schemes notifications come from, each with its cloud's
	// usual credential chain; mempubsub (mem://) is for tests.
	_ "gocloud.dev/pubsub/awssnssqs"
	_ "gocloud.dev/pubsub/azuresb"
	_ "gocloud.dev/pubsub/gcppubsubv2"
	_ "gocloud.dev/pubsub/mempubsub"
)

// openNotifications opens the subscription. There is no checkpoint: the
// queue holds what is pending, and a done-set shared by competing replicas
// would need a lease held by one of them.
func (in *currentsInput) openNotifications(ctx context.Context) error {
	if err := in.openSub(ctx); err != nil {
		return fmt.Errorf("opening %s %s: %w", inFieldNotifications, bucketName(in.conf.notifications), err)
	}
	in.stats.noticesHeldBack(0)
	in.log.Infof("Reading the objects of %s that notifications from %s name (bucket name %q); no checkpoint, the queue holds what is pending",
		bucketName(in.conf.url), bucketName(in.conf.notifications), noticeBucket(in.conf.url))
	return nil
}

// openSub opens the subscription. Its client may hold two notifications a
// reader (one read, one waiting): unbounded, RabbitMQ's took the whole queue
// and Pub/Sub's up to 1000, away from the other replicas.
func (in *currentsInput) openSub(ctx context.Context) error {
	sub, err := subscription.Open(driverlog.With(ctx, in.log), in.conf.notifications, 2*in.conf.parallel)
	if err != nil {
		return err
	}
	in.mu.Lock() // Close reads it while receive may open it again
	in.sub = sub
	in.mu.Unlock()
	return nil
}

// subStopping tells the subscription, if any, that its Shutdown comes next
// (subscription.Stopping): a notification nacked from now on is sent back
// once gcppubsubv2's streaming pull ended. Nacked on the open stream before,
// as the stop cut its object's read short, it was dropped by the client as
// the stream closed, or delivered again onto that stream, and waited out
// the stream's ack deadline (60 s) before another replica got it.
func (in *currentsInput) subStopping() {
	in.mu.Lock()
	sub := in.sub
	in.mu.Unlock()
	if sub != nil {
		sub.Stopping()
	}
}

// receive hands the objects notifications name to the readers until ctx
// ends. A subscription that fails for good is opened again, with backoff.
func (in *currentsInput) receive(ctx context.Context, objects chan<- object) {
	policy := backoff.NewExponentialBackOff(backoff.WithMaxInterval(time.Minute), backoff.WithMaxElapsedTime(0))
	bucket := noticeBucket(in.conf.url)
	var failing outage // receiving
	for {
		if !in.waitRoom(ctx) {
			return
		}
		m, err := in.sub.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if lasted, ok := failing.ended(in.clock.Now()); ok {
				in.log.Infof("Receiving notifications from %s works again, after failing for %v", bucketName(in.conf.notifications), lasted)
			}
			policy.Reset()
			in.handleNotice(ctx, m, bucket, objects)
			continue
		}
		failing.failed(in.clock.Now())
		wait := policy.NextBackOff()
		in.stats.receivesFailed.Incr(1)
		in.log.Errorf("Receiving notifications from %s failed, opening it again in %v: %v", bucketName(in.conf.notifications), wait, err)
		_ = in.sub.Shutdown(ctx)
		if !sleepCtx(ctx, in.clock, wait) {
			return
		}
		if err := in.openSub(ctx); err != nil {
			in.log.Errorf("Opening %s again failed: %v", bucketName(in.conf.notifications), err)
		}
	}
}

// handleNotice reads what m names and settles m: at once when it names
// nothing to read, or once every object it names is done.
func (in *currentsInput) handleNotice(ctx context.Context, m *pubsub.Message, bucket string, objects chan<- object) {
	n, err := parseNotification(m.Body, m.Metadata)
	if err != nil {
		// Redelivering it would fail the same way, for ever.
		in.stats.noticesMalformed.Incr(1)
		in.log.Warnf("Acknowledging malformed notification %s without reading anything: %v", m.LoggableID, err)
		in.ackUnread(m)
		return
	}
	var wanted []object
	for _, ref := range n.objects {
		if o, why := in.noticeObject(ref, bucket); why != "" {
			in.log.Debugf("Skipping notification %s: %s/%s %s", m.LoggableID, ref.bucket, ref.key, why)
			if ref.bucket == bucket && strings.HasPrefix(ref.key, in.conf.prefix) {
				in.noteSkippedNotice(ref.key)
			}
		} else {
			wanted = append(wanted, o)
			in.skipped.warned = false
		}
	}
	if len(wanted) == 0 {
		if n.warn != "" {
			in.log.Warnf("Acknowledging notification %s, which names no object: %s", m.LoggableID, n.warn)
		} else if n.skip != "" {
			in.log.Debugf("Skipping notification %s: %s", m.LoggableID, n.skip)
		}
		in.ackUnread(m)
		return
	}
	run := &noticeRun{msg: m, sub: in.sub, pending: len(wanted), report: in.noticeSettled}
	for i, o := range wanted {
		o.notice = run
		if !in.claimNotified(o, run) {
			continue
		}
		in.stats.objectFound()
		in.noticeReading(1)
		select {
		case objects <- o:
		case <-ctx.Done():
			in.noticeReading(-1)
			in.endRead(o, false)
			for range wanted[i+1:] {
				run.settled(false)
			}
			return
		}
	}
}

// ackUnread acknowledges a notification that names nothing to read.
func (in *currentsInput) ackUnread(m *pubsub.Message) {
	in.sub.Ack(m)
	if in.noticeSettled != nil {
		in.noticeSettled(m, true)
	}
}

// noticeObject is the object ref names, or why it is not read.
func (in *currentsInput) noticeObject(ref objectRef, bucket string) (object, string) {
	if ref.bucket != bucket {
		return object{}, fmt.Sprintf("is not in bucket %q", bucket)
	}
	if !strings.HasPrefix(ref.key, in.conf.prefix) {
		return object{}, fmt.Sprintf("is not under prefix %q", in.conf.prefix)
	}
	o, ok := in.conf.sel.objectAt(ref.key)
	if !ok || o.eventType == "" {
		return object{}, "is not a selected Currents object (an .avro key with an event_type= and date= the input reads)"
	}
	return o, ""
}

// maxCopies bounds the copies of notifications held for one object. A
// queue delivers a notification again only once its deadline passed, so an
// object collects one copy per deadline (10 s to minutes) its read outlasts.
const maxCopies = 8

// heldNotices are the notifications naming an object being read that came
// after the one its read settles, mostly the queue delivering that one again
// (the read outlasted the ack deadline or visibility timeout). Settling a
// copy settles the message: acking it before the read is done would lose
// the object if the read then failed, so copies settle with the read.
type heldNotices struct {
	copies []*noticeRun
	closed bool // the read completed: copies settle at once, as it did
	done   bool
}

// claimNotified takes an object for reading unless it is being read; then
// run, which names it too, settles when that read does.
func (in *currentsInput) claimNotified(o object, run *noticeRun) bool {
	in.mu.Lock()
	if !in.inFlight[o.key] {
		in.inFlight[o.key] = true
		in.held[o.key] = &heldNotices{}
		in.mu.Unlock()
		return true
	}
	h := in.held[o.key]
	if h.closed {
		in.mu.Unlock()
		run.settled(h.done)
		return false
	}
	h.copies = append(h.copies, run)
	var dropped *noticeRun
	if len(h.copies) > maxCopies {
		// The oldest copy's ack ID or receipt handle is stale (the queue
		// delivered the message again since): sending it back cannot take
		// the message out of the queue, acknowledging it might.
		dropped, h.copies = h.copies[0], h.copies[1:]
	}
	in.mu.Unlock()
	if dropped != nil {
		in.log.Warnf("Object %q: more than %d copies of its notifications arrived while it was read; sending back notification %s", o.key, maxCopies, dropped.msg.LoggableID)
		dropped.settled(false)
	}
	return false
}

// endRead settles o's notifications as its read ended (done, or not), then
// releases o: a notification arriving from then on reads it again.
func (in *currentsInput) endRead(o object, done bool) {
	if o.notice == nil {
		in.release(o)
		return
	}
	in.mu.Lock()
	h := in.held[o.key]
	h.closed, h.done = true, done
	copies := h.copies
	h.copies = nil
	in.mu.Unlock()
	o.notice.settled(done)
	for _, c := range copies {
		c.settled(done)
	}
	in.release(o)
	in.mu.Lock()
	if in.held[o.key] == h {
		delete(in.held, o.key)
	}
	in.mu.Unlock()
}

// noticeRun follows one notification until every object it named is done:
// then it is acknowledged, or sent back to the queue if one was not.
type noticeRun struct {
	msg    *pubsub.Message
	sub    *subscription.Subscription          // received msg
	report func(m *pubsub.Message, acked bool) // tests watch settlements

	mu      sync.Mutex
	pending int
	failed  bool
}

func (r *noticeRun) settled(done bool) {
	r.mu.Lock()
	r.pending--
	r.failed = r.failed || !done
	last, failed := r.pending == 0, r.failed
	r.mu.Unlock()
	if !last {
		return
	}
	switch {
	case !failed:
		r.sub.Ack(r.msg)
	case r.msg.Nackable():
		r.sub.Nack(r.msg)
	}
	// Otherwise the queue redelivers it once its visibility timeout passes.
	if r.report != nil {
		r.report(r.msg, !failed)
	}
}

// noticeBucket is the bucket name notifications carry for url: its host
// (an S3 or GCS bucket, an Azure container), or for a file:// bucket the
// directory's base name.
func noticeBucket(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.Scheme == fileblob.Scheme {
		return path.Base(path.Clean(u.Path))
	}
	return u.Host
}
