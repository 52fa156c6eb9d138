package brazecurrents

import (
	"context"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// The notification of an object unreadable after read_attempts is held
// before it is sent back, twice as long as the object has been failing (its
// spell, on the input's clock), at least minSendBackDelay and at most
// maxSendBackDelay. Sent back at once, it was delivered again at once, and
// each delivery cost only the attempts' backoff (about 8 s): a queue with a
// dead-letter limit (Service Bus's MaxDeliveryCount, 10 by default) moved it
// to its dead-letter queue after about a minute and a half of an outage of
// the bucket. Held, each delivery triples the spell until the delay reaches
// its cap: ten deliveries span about 85 minutes, then come 4 an hour.
//
// The cap keeps a held notification, with the read before its delay, well
// within what every queue lets a consumer hold it: RabbitMQ's
// consumer_timeout (30 minutes by default); SQS's visibility, Service Bus's
// locks, the Pub/Sub client's deadlines (up to 7 days) and NATS's ack wait
// are extended for as long as it is held (internal/subscription, the nats
// driver). It also bounds how late an object is read once readable.
const (
	minSendBackDelay = 10 * time.Second
	maxSendBackDelay = 15 * time.Minute
)

// An object's spell (in.unreadable) ends when this replica reads it. One
// that another replica read, or whose notification the queue dead-lettered,
// would be kept for ever, and a later failure of the key would start at the
// long delay, at debug level: a spell no delivery failed for
// forgetUnreadable, four times the longest hold-back, is forgotten, and at
// most maxUnreadable are kept (an outage of a bucket with more objects
// than that forgets the least recently failed first), on the input's clock.
const (
	forgetUnreadable = 4 * maxSendBackDelay
	maxUnreadable    = 10000
)

// sendBackDelay is how long to hold the notification of an object failing
// for failingFor.
func sendBackDelay(failingFor time.Duration) time.Duration {
	return min(max(2*failingFor, minSendBackDelay), maxSendBackDelay)
}

// heldBack are the objects whose notifications wait to be sent back. Each
// stays claimed meanwhile, so that a copy of its notification delivered
// again is held with it (heldNotices). They count, with the objects taken
// for reading and not yet read (each may be held back next), against the
// two notifications a reader the input holds: with 2×max_parallel_objects
// held back (an outage of the bucket) the input receives no more until one
// is sent back, rather than taking the whole queue through its reads. Fewer
// leave at least one place for a healthy object, here as on the Pub/Sub
// client and the RabbitMQ prefetch, which count them too.
type heldBack struct {
	mu      sync.Mutex
	objects map[string]heldObject // by key
	reading int                   // objects taken from notifications, not yet read
	closed  bool                  // the input stopped: send back at once
	room    chan struct{}         // closed when one is sent back or read
	full    bool                  // said so in the log
}

type heldObject struct {
	o     object
	timer clockwork.Timer
}

// holdBack holds o's notifications for d, then sends them back; at once if
// the input stopped.
func (in *currentsInput) holdBack(o object, d time.Duration) {
	b := &in.back
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		in.endRead(o, false)
		return
	}
	if b.objects == nil {
		b.objects = map[string]heldObject{}
	}
	// Under b.mu, so that the timer finds o held however soon it fires.
	b.objects[o.key] = heldObject{o: o, timer: in.clock.AfterFunc(d, func() { in.sendBack(o.key) })}
	in.stats.noticesHeldBack(len(b.objects)) // under b.mu: sets in order
	b.mu.Unlock()
	if in.noticeHeldBack != nil {
		in.noticeHeldBack(o.key, d)
	}
}

// sendBack sends key's notifications back unless that was done already.
func (in *currentsInput) sendBack(key string) {
	b := &in.back
	b.mu.Lock()
	h, ok := b.objects[key]
	if ok {
		delete(b.objects, key)
		b.makeRoom()
	}
	in.stats.noticesHeldBack(len(b.objects))
	b.mu.Unlock()
	if ok {
		in.endRead(h.o, false)
	}
}

// makeRoom wakes waitRoom; b.mu is held.
func (b *heldBack) makeRoom() {
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
}

// noticeReading counts an object taken from a notification for reading
// (1), or read (-1).
func (in *currentsInput) noticeReading(n int) {
	b := &in.back
	b.mu.Lock()
	b.reading += n
	if n < 0 {
		b.makeRoom()
	}
	b.mu.Unlock()
}

// sendBackHeld sends back at once every notification held back, and those
// held back from now on: the input stops.
func (in *currentsInput) sendBackHeld() {
	b := &in.back
	b.mu.Lock()
	b.closed = true
	var keys []string
	for key, h := range b.objects {
		h.timer.Stop()
		keys = append(keys, key)
	}
	b.mu.Unlock()
	for _, key := range keys {
		in.sendBack(key)
	}
}

// waitRoom waits until fewer than two notifications a reader are held
// back or being read with some held back, false if ctx ended first. With
// none held back, the wait for a reader bounds what is taken.
func (in *currentsInput) waitRoom(ctx context.Context) bool {
	b, limit := &in.back, 2*in.conf.parallel
	for {
		b.mu.Lock()
		held := len(b.objects)
		if held == 0 || held+b.reading < limit {
			full := b.full
			b.full = false
			b.mu.Unlock()
			if full {
				in.log.Infof("Receiving notifications again: one held back was sent back")
			}
			return true
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room, warn := b.room, held >= limit && !b.full
		b.full = b.full || held >= limit
		b.mu.Unlock()
		if warn {
			in.log.Warnf("Receiving no notifications while %d held back (their objects cannot be read) wait to be sent back: 2 a reader (%s) at most",
				held, inFieldParallel)
		}
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}
