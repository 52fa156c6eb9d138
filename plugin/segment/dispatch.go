package segment

import (
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// A call's journey, in this file: WriteBatch hands its encoded calls to the
// dispatcher, which packs the calls of every batch waiting (from any number
// of concurrent WriteBatch calls: group commit) into requests within
// Segment's limits, sends up to maxRequests of them at once, and settles
// each call exactly once: accepted, failed for good, or handed back.

// maxRequestBytes is Segment's limit on a batch request, less room for the
// envelope. Segment documents 500 KB without saying which KB; analytics-go
// packs to 500,000 bytes (its Ruby and Java libraries to 512,000), and the
// stricter reading costs 2% of a full request where the other would cost
// a 400 and a split whenever Segment means it.
const maxRequestBytes = 500_000 - 256

// callRef is one call on its way: its wire JSON and where its outcome goes.
type callRef struct {
	wire  []byte
	wait  *batchWait
	index int
}

// settle records the call's outcome: the one place where it is decided.
func (c *callRef) settle(err error) { c.wait.settle(c.index, err) }

// batchWait collects the outcomes of one WriteBatch's calls.
type batchWait struct {
	mu      sync.Mutex
	errs    []error
	pending int
	done    chan struct{}
}

func newBatchWait(n int) *batchWait {
	return &batchWait{errs: make([]error, n), done: make(chan struct{})}
}

func (w *batchWait) settle(i int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs[i] = err
	if w.pending--; w.pending == 0 {
		close(w.done)
	}
}

// dispatcher owns the queue of calls of one write key and its requests in
// flight.
type dispatcher struct {
	s             *sender
	authorization string // the write key's Basic auth header
	label         string // what the key serves, for messages: never the key
	maxRequests   int

	mu       sync.Mutex
	queue    []*callRef
	inFlight int
	// How long requests have failed since Segment last accepted one: the
	// spells that ended (no request failing any more), and the one open
	// since failingSince (zero when none is). Idle time is in neither.
	failedFor    time.Duration
	failingSince time.Time
	failing      int   // requests that failed and have not ended yet
	down         error // set while Segment is unreachable or refuses the key
	// retryAt is when the latest Retry-After ends (real time, as the waits
	// are): Connect's probes wait for it, so that going down does not send
	// sooner than Segment asked.
	retryAt time.Time
	// Since Segment last accepted a request: the probes' pace, kept across
	// outages, and what was said of the outage (outage.go).
	probes backoff.BackOff
	said   outageSaid
}

func newDispatcher(s *sender, authorization string, maxRequests int) *dispatcher {
	return &dispatcher{s: s, authorization: authorization, maxRequests: maxRequests}
}

// submit queues calls and starts requests while there are free slots. Calls
// that arrive while every slot is busy wait, and go out together.
func (d *dispatcher) submit(calls []*callRef) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down != nil {
		for _, c := range calls {
			c.settle(d.down)
		}
		return
	}
	d.queue = append(d.queue, calls...)
	d.startLocked()
}

func (d *dispatcher) startLocked() {
	for d.inFlight < d.maxRequests && len(d.queue) > 0 {
		n, size := 0, 0
		for n < len(d.queue) && n < d.s.maxCalls && size+len(d.queue[n].wire)+1 <= maxRequestBytes {
			size += len(d.queue[n].wire) + 1
			n++
		}
		req := d.queue[:n:n]
		d.queue = d.queue[n:]
		d.inFlight++
		go d.run(req)
	}
}

// run delivers one request, then frees its slot for the calls waiting.
func (d *dispatcher) run(calls []*callRef) {
	d.deliver(calls)
	d.mu.Lock()
	d.inFlight--
	d.startLocked()
	d.mu.Unlock()
}

// deliver sends calls until Segment accepts them, refuses them for good, or
// they are handed back (retries exhausted, Segment down, the output closing).
func (d *dispatcher) deliver(calls []*callRef) {
	buf := bodies.Get().(*[]byte)
	body := d.s.requestBody((*buf)[:0], calls)
	defer func() {
		*buf = body[:0]
		bodies.Put(buf)
	}()
	if d.s.dryRun != nil {
		settleAll(calls, d.s.dryRun.write(body))
		return
	}
	refused, err := d.try(body)
	if refused != nil {
		d.rejected(calls, *refused)
		return
	}
	settleAll(calls, err)
}

// try sends a request body until Segment accepts it (nil, nil), refuses it
// for its content (its answer), or its calls are handed back (the error to
// settle them with). The spell of failures it was part of is closed before
// it returns, so before its calls settle and their batch's outcome is read.
func (d *dispatcher) try(body []byte) (*postResult, error) {
	policy := d.s.newBackOff()
	failed := false
	defer func() {
		if failed {
			d.doneFailing()
		}
	}()
	for attempt := 0; ; attempt++ {
		stampSentAt(body, d.s.clock.Now())
		res := d.s.post(d.s.closing, d.authorization, body)
		ok, transient := res.class()
		switch {
		case res.err == nil && ok:
			d.accepted()
			return nil, nil
		case res.err == nil && refusesEveryCall(res):
			return nil, d.markDown(d.refusedKey(res))
		case res.err == nil && !transient:
			return &res, nil
		}
		if d.s.closing.Err() != nil {
			return nil, &CallError{Cause: CauseShutdown, Detail: "the output closed before Segment accepted the calls"}
		}
		failure := &CallError{Cause: CauseTransient, Status: res.status, Detail: res.detail}
		if d.askedToWait(res.retryAfter) && res.retryAfter >= longRetryAfter {
			// Up to maxRetryAfter with /ready at 200 and nothing sent:
			// said once a wait, not left to a debug line.
			d.s.log.Warnf("Segment at %s asks to wait %v before the next request (HTTP %d): the calls are held until then, not lost", d.s.where, res.retryAfter, res.status)
		}
		silent := d.failingFor(!failed)
		failed = true
		if silent >= d.s.unreachableAfter {
			return nil, d.markDown(&CallError{Cause: CauseUnreachable, Status: res.status,
				Detail: fmt.Sprintf("Segment at %s accepted no request for %v, waiting for it; last: %s", d.s.where, silent.Round(time.Second), failure.Error())})
		}
		wait := policy.NextBackOff()
		if wait == backoff.Stop || (d.s.maxRetries > 0 && attempt >= d.s.maxRetries) {
			// For the dead letters: an answer's body need not say whose it is.
			failure.Detail += fmt.Sprintf(" (Segment at %s, gave up after %d attempts)", d.s.where, attempt+1)
			return nil, failure
		}
		wait = max(wait, res.retryAfter) // capped at maxRetryAfter
		d.s.metrics.retries.Incr(1)
		d.s.log.Debugf("Segment request failed (%v), retrying in %v (Segment at %s)", failure, wait, d.s.where)
		select {
		case <-time.After(wait):
		case <-d.s.closing.Done():
			return nil, &CallError{Cause: CauseShutdown, Detail: "the output closed while waiting to retry: " + failure.Error()}
		}
		if err := d.downErr(); err != nil {
			return nil, err // another request found Segment down meanwhile
		}
	}
}

// rejected handles a permanent answer: a request Segment refused for its
// content is split in halves, recursively, so that only the calls at fault
// fail and the others are delivered.
func (d *dispatcher) rejected(calls []*callRef, res postResult) {
	if res.blamesCalls() && len(calls) > 1 {
		half := len(calls) / 2
		d.deliver(calls[:half:half])
		d.deliver(calls[half:])
		return
	}
	for _, c := range calls {
		c.settle(&CallError{Cause: CauseRejected, Status: res.status, Permanent: true, Detail: wireName(c.wire) + ": " + res.detail})
	}
}

func settleAll(calls []*callRef, err error) {
	for _, c := range calls {
		c.settle(err)
	}
}

func (d *dispatcher) accepted() {
	d.mu.Lock()
	d.failedFor, d.failingSince = 0, time.Time{}
	d.probes, d.said = nil, outageSaid{}
	d.mu.Unlock()
}

// failingFor notes a failed attempt of a request (first: its first) and
// says how long requests have been failing with none accepted: idle time,
// before a failure or between a request's end and the next one's failure,
// does not count.
func (d *dispatcher) failingFor(first bool) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if first {
		d.failing++
	}
	now := d.s.clock.Now()
	if d.failingSince.IsZero() {
		d.failingSince = now
	}
	return d.failedFor + now.Sub(d.failingSince)
}

// doneFailing notes the end of a request that failed, however it ended
// (given up, rejected, handed back): once none is failing, the spell closes.
func (d *dispatcher) doneFailing() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing--; d.failing == 0 && !d.failingSince.IsZero() {
		d.failedFor += d.s.clock.Now().Sub(d.failingSince)
		d.failingSince = time.Time{}
	}
}
