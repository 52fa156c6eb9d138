package subscription

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"
)

// A queue keeps a message it delivered from its other consumers only for a
// while (Pub/Sub's ack deadline, SQS's visibility timeout), then delivers it
// again. gocloud's gcppubsub and awssqs drivers never extend that while: a
// message held longer in the pipeline (Segment down, the output retrying)
// was delivered again while still held, a duplicate, and with many held a
// storm of them. leases extends them instead, as gcppubsubv2's client does
// its own.

var (
	// leaseExtension is how long each extension keeps the messages.
	leaseExtension = 60 * time.Second
	// leasePeriod is how long a message fetched is held at most before its
	// first extension (SQS's, whose fetch the driver reports; Pub/Sub's
	// from when the input received it): well under the shortest deadline
	// Pub/Sub allows (10 s) and SQS's default visibility timeout (30 s).
	// Messages settled sooner, as most are in a flowing pipeline, cost no
	// call. A variable for the tests.
	leasePeriod = 3 * time.Second
	// renewPeriod is how long an extension stands before the next: half
	// of leaseExtension, so that one failed or late call loses nothing. SQS
	// takes 10 messages a call (and bills each), so extending every
	// message at every look cost a call a second for each 30 held.
	renewPeriod = leaseExtension / 2
)

// extendTimeout bounds one call that extends or sends back messages.
const extendTimeout = 10 * time.Second

// looksPerLease is how many times a leasePeriod the leases are looked at: a
// message due between two looks is extended at the one before, so at most
// a look early; looked at only every leasePeriod, a message fetched just
// after a look was first extended up to two periods after its fetch, past
// a visibility timeout of 5 s.
const looksPerLease = 3

// lookPeriod is how often the leases are looked at.
func lookPeriod() time.Duration { return leasePeriod / looksPerLease }

// leaseService is a queue whose leases the input extends.
type leaseService interface {
	// leaseID is m's ack ID or receipt handle, if m is the service's.
	leaseID(m *pubsub.Message) (string, bool)
	// modify keeps the messages of ids from the other consumers for d
	// from now; 0 sends them back.
	modify(ctx context.Context, ids []string, d time.Duration) error
	// maxIDs is how many ids one modify takes.
	maxIDs() int
	// failure tells kinds of errors apart, to log each once.
	failure(err error) string
	// name names the queue and its timer in logs.
	name() (queue, timer string)
}

// timedLeases is a leaseService whose extensions last what the queue sets,
// not what the call asks (Service Bus's locks): it says how long one stands.
type timedLeases interface {
	// renewAfter is how long an extension made now stands before the next.
	renewAfter() time.Duration
}

// leases extends the leases of the messages a subscription received and no
// one settled yet.
type leases struct {
	svc leaseService
	log *service.Logger // may be nil

	now func() time.Time

	mu     sync.Mutex
	held   map[string]time.Time // by lease ID: when its next extension is due
	logged map[string]bool      // the kinds of failure logged already
	// sending are the IDs of the extension on its way, and renack those
	// of them nacked meanwhile: the extension may reach the server after
	// the nack and hold them back for leaseExtension, so they are nacked
	// again after it.
	sending map[string]bool
	renack  []string
	// closed is set once the subscription shut down: what is reported
	// fetched after that is sent back at once.
	closed bool

	stop     context.CancelFunc
	stopped  chan struct{}
	stopOnce sync.Once
}

// startLeases starts extending the messages received from svc.
func startLeases(svc leaseService, log *service.Logger) *leases {
	ctx, stop := context.WithCancel(context.Background())
	l := &leases{svc: svc, log: log, now: time.Now, held: map[string]time.Time{}, logged: map[string]bool{},
		stop: stop, stopped: make(chan struct{})}
	go l.run(ctx)
	return l
}

// received extends m within leasePeriod, as it was fetched then: when the
// driver fetched it, and so how much of its deadline is left, is not
// known. (A message whose fetch was reported is held already, and keeps
// its due time.)
func (l *leases) received(m *pubsub.Message) {
	if id, ok := l.svc.leaseID(m); ok {
		l.hold([]string{id}, leasePeriod)
	}
}

// hold extends the messages of ids, fetched now, until they are settled,
// the first time by the time they were held for first, at the last look
// before. A message held already keeps its due time.
func (l *leases) hold(ids []string, first time.Duration) {
	due := l.now().Add(max(0, first-lookPeriod()))
	l.mu.Lock()
	if l.closed {
		// A fetch that ended after the shutdown (gocloud does not wait
		// for it): no one receives these.
		l.mu.Unlock()
		l.sendBack(ids)
		return
	}
	for _, id := range ids {
		if _, ok := l.held[id]; !ok {
			l.held[id] = due
		}
	}
	l.mu.Unlock()
}

// settled stops extending m, before it is acked or nacked.
func (l *leases) settled(m *pubsub.Message, ack bool) {
	if id, ok := l.svc.leaseID(m); ok {
		l.mu.Lock()
		delete(l.held, id)
		if !ack && l.sending[id] {
			l.renack = append(l.renack, id)
		}
		l.mu.Unlock()
	}
}

func (l *leases) run(ctx context.Context) {
	defer close(l.stopped)
	tick := time.NewTicker(lookPeriod())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.extend(ctx)
	}
}

// extend keeps the messages whose extension is due for leaseExtension from
// now, maxIDs a call.
func (l *leases) extend(ctx context.Context) {
	now := l.now()
	var ids []string
	var soon []heldLease
	l.mu.Lock()
	for id, due := range l.held {
		if !due.After(now) {
			ids = append(ids, id)
		} else if due.Before(now.Add(leasePeriod)) {
			soon = append(soon, heldLease{id, due})
		}
	}
	l.mu.Unlock()
	ids = l.fill(ids, soon)
	for batch := range slices.Chunk(ids, l.svc.maxIDs()) {
		if ctx.Err() != nil {
			return // stopping: no call more
		}
		l.mu.Lock()
		l.sending = make(map[string]bool, len(batch))
		live := batch[:0] // without those settled since the snapshot
		for _, id := range batch {
			if _, ok := l.held[id]; ok {
				l.sending[id] = true
				live = append(live, id)
			}
		}
		l.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		// A call under way is not cancelled by a stop: cancelled, it could
		// still reach the server after the shutdown's nacks and hold those
		// messages back for leaseExtension. The stop waits for it instead
		// (extendTimeout at most), and what was nacked meanwhile is nacked
		// again after it (renack).
		err := l.call(context.Background(), live, leaseExtension)
		if err != nil && l.stillHeld(err) {
			l.failed(len(live), err)
		}
		next := now.Add(renewPeriod)
		if t, ok := l.svc.(timedLeases); ok {
			next = now.Add(t.renewAfter())
		}
		// Unless the call failed as a whole, the IDs it took are extended;
		// the others are tried again at the next look.
		var refused map[string]bool
		if r, ok := err.(refusedIDs); ok {
			refused = make(map[string]bool)
			for _, id := range r.refused() {
				refused[id] = true
			}
		}
		l.mu.Lock()
		if err == nil || refused != nil {
			for _, id := range live {
				if _, ok := l.held[id]; ok && !refused[id] {
					l.held[id] = next
				}
			}
		}
		renack := l.renack
		l.sending, l.renack = nil, nil
		l.mu.Unlock()
		if len(renack) > 0 {
			// Failing, they come back after leaseExtension: late, not lost.
			_ = l.call(context.Background(), renack, 0)
		}
	}
}

// heldLease is a held message's lease ID and when its extension is due.
type heldLease struct {
	id  string
	due time.Time
}

// fill adds to the calls that the due ids take, as far as their last has
// room, the messages soon due, soonest first: extended a look or two
// early, they cost no call of their own, and the calls stay as few as when
// the leases were looked at only every leasePeriod. Not so where each ID
// is a call (Service Bus's, whose locks are timedLeases).
func (l *leases) fill(ids []string, soon []heldLease) []string {
	if _, timed := l.svc.(timedLeases); timed || len(ids) == 0 {
		return ids
	}
	room := (l.svc.maxIDs() - len(ids)%l.svc.maxIDs()) % l.svc.maxIDs()
	slices.SortFunc(soon, func(a, b heldLease) int { return a.due.Compare(b.due) })
	for _, s := range soon[:min(room, len(soon))] {
		ids = append(ids, s.id)
	}
	return ids
}

// refusedIDs is an error of a call that some IDs of failed alone.
type refusedIDs interface{ refused() []string }

// stillHeld is whether err concerns a message still held: an ID refused
// because its message was settled while the call was on its way (SQS
// deleted it) is no failure.
func (l *leases) stillHeld(err error) bool {
	r, ok := err.(refusedIDs)
	if !ok {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range r.refused() {
		if _, ok := l.held[id]; ok {
			return true
		}
	}
	return false
}

func (l *leases) call(ctx context.Context, ids []string, d time.Duration) error {
	call, cancel := context.WithTimeout(ctx, extendTimeout)
	defer cancel()
	return l.svc.modify(call, ids, d)
}

// failed logs a failed extension, once for each kind of error: the
// messages come again if it keeps failing past their deadline.
func (l *leases) failed(n int, err error) {
	kind := l.svc.failure(err)
	l.mu.Lock()
	seen := l.logged[kind]
	l.logged[kind] = true
	l.mu.Unlock()
	if seen || l.log == nil {
		return
	}
	queue, timer := l.svc.name()
	l.log.Warnf("%s: extending the %s of the messages held in the pipeline (%d) failed (%v): "+
		"unless a later extension succeeds in time, they are delivered again while still held. "+
		"Logged once for each kind of error", queue, timer, n, err)
}

// stopExtending stops the extensions and waits for the one under way, before
// the subscription shuts down: its driver may close what they need.
func (l *leases) stopExtending() {
	if l.stop != nil {
		l.stopOnce.Do(l.stop)
		<-l.stopped
	}
}

// close sends back what is still held, once the subscription shut down:
// Connect closes an input once the messages in flight were settled or its
// shutdown ran out of time, so nothing will settle those. They are
// delivered again at once, not up to leaseExtension later. Sent back
// before the shutdown, they were often fetched again by a fetch of the
// subscription's still under way, and then held until the queue's own
// timeout.
func (l *leases) close() {
	l.stopExtending()
	l.mu.Lock()
	ids := slices.Collect(maps.Keys(l.held))
	clear(l.held)
	l.closed = true
	l.mu.Unlock()
	l.sendBack(ids)
}

// sendBack makes the messages of ids deliverable again at once.
func (l *leases) sendBack(ids []string) {
	for batch := range slices.Chunk(ids, l.svc.maxIDs()) {
		if err := l.call(context.Background(), batch, 0); err != nil && l.log != nil {
			queue, _ := l.svc.name()
			l.log.Warnf("%s: sending back %d messages still held at shutdown failed (%v): "+
				"they are delivered again within %v", queue, len(batch), err, leaseExtension)
		}
	}
}
