package segment

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// An outage, in this file: a dispatcher goes down when Segment accepted no
// request for unreachable_after or refused the write key; its calls are
// handed back and Connect's Connect probes until Segment takes calls again.
// An outage ends only when Segment accepts a request with calls in it: a
// probe it takes (an empty batch) may be followed by the calls refused
// again, by a proxy that lets small bodies through or a key Segment reads
// only once it has read the batch. Until then the probes keep their pace
// and the outage is logged once.

// outageSaid is what the logs said of the outage going on.
type outageSaid struct {
	cause   string // the cause logged as an error ("": none yet)
	up      bool   // a probe was taken, and that was logged
	relapse bool   // the calls failed again after that, and that was logged
}

// markDown hands every waiting call back: the output reports itself down
// (so /ready answers 503) until Connect's probe succeeds. It returns the
// error to settle the caller's calls with: read again later, the down state
// may already be cleared by a probe, and those calls were never accepted.
func (d *dispatcher) markDown(err *CallError) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Logged once per cause and outage: probes that find the same again,
	// and calls refused again after a probe was taken, say nothing more.
	switch {
	case d.said.cause != err.Cause:
		d.said = outageSaid{cause: err.Cause}
		d.s.log.Errorf("%v", err)
	case d.said.up && !d.said.relapse:
		d.said.relapse = true
		d.s.log.Warnf("Segment at %s took a probe (an empty batch) under %s but not the calls that followed: held again, probing with the backoff until it accepts them: %v", d.s.where, d.label, err)
	}
	var prev *CallError
	if !errors.As(d.down, &prev) || prev.Cause != err.Cause {
		d.down = err
	}
	for _, c := range d.queue {
		c.settle(d.down)
	}
	d.queue = nil
	return d.down
}

// askedToWait notes a Retry-After, for the probes that follow, and tells
// whether it starts a wait: no earlier Retry-After was still running.
func (d *dispatcher) askedToWait(wait time.Duration) (starts bool) {
	if wait <= 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	starts = !d.retryAt.After(now)
	if at := now.Add(wait); at.After(d.retryAt) {
		d.retryAt = at
	}
	return starts
}

// retryAfterLeft is how long the latest Retry-After still asks to wait.
func (d *dispatcher) retryAfterLeft() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Until(d.retryAt)
}

func (d *dispatcher) downErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

// up clears the down state once a probe succeeded, and says whether that
// is news for the logs.
func (d *dispatcher) up() (news bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down, d.failedFor, d.failingSince = nil, 0, time.Time{}
	news = d.said.cause != "" && !d.said.up
	d.said.up = true
	return news
}

// nextProbe is how long to wait before the next probe: nothing before the
// first of an outage (but a Retry-After), the backoff's next interval
// after, also after a probe was taken and the calls failed again.
func (d *dispatcher) nextProbe() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.probes == nil {
		d.probes = d.s.newBackOff()
		return 0
	}
	wait := d.probes.NextBackOff()
	if wait == backoff.Stop {
		wait = d.s.backoff.MaxInterval
	}
	return wait
}

// refusedKey is the error of a request whose key or endpoint Segment refused.
func (d *dispatcher) refusedKey(res postResult) *CallError {
	answer := fmt.Sprintf("HTTP %d", res.status)
	if res.page {
		answer += " with a web page, not the API's answer"
	}
	return &CallError{Cause: CauseUnauthorized, Status: res.status, Detail: fmt.Sprintf(
		"Segment at %s refused %s (%s): check the key, its region and the endpoint (or proxy); calls are held until it works: %s", d.s.where, d.label, answer, res.detail)}
}

// refusesEveryCall statuses blame the write key, the endpoint or a proxy in
// front of it, not the calls: 401, 403, 404, a redirect (never followed), a
// proxy's 407, a 405 or 415 from something that is not the API, 501, 505,
// a 2xx web page, a 400 or 422 web page (a front's, not the API's).
// Every call would fail alike, so calls are held, never dead-lettered: only
// 400, 413 and 422 from the API blame a request's content (blamesCalls).
func refusesEveryCall(res postResult) bool {
	ok, transient := res.class()
	return !ok && !transient && !res.blamesCalls()
}

// awaitUp probes Segment until it takes calls again under every write key
// it was not taking (and accepts them), with the output's backoff. Connect
// blocks here rather than failing, so that the error that took the output
// down is logged once, not at every probe.
func (s *sender) awaitUp(ctx context.Context) error {
	for _, d := range s.routes.all {
		if d.downErr() == nil {
			continue
		}
		if err := d.awaitUp(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *dispatcher) awaitUp(ctx context.Context) error {
	var err error
	for {
		// Not before the Retry-After of the answer that took the output
		// down, or of the last probe.
		wait := max(d.nextProbe(), d.retryAfterLeft())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return cmp.Or(err, ctx.Err())
		}
		if err = d.probe(ctx); err == nil {
			return nil
		}
		d.s.log.Debugf("Probing Segment: %v", err)
	}
}

// probe asks Segment for an answer with an empty batch, which it accepts
// and ignores. After an outage any answer from its API will do, but one
// asking to wait (a 429 or 408 with Retry-After): awaitUp waits it out and
// asks again, as the held calls would otherwise go at once; after the
// key was refused, only an answer past the key: an acceptance, or a refusal
// of the batch's content (400, 413, 422, not a web page), which the API reads only under a
// key it takes. Segment documents no answer to an empty batch, and waiting
// for a 2xx alone would hold the stream until a restart if it refused one.
func (d *dispatcher) probe(ctx context.Context) error {
	down := d.downErr()
	res := d.s.post(ctx, d.authorization, []byte(`{"batch":[]}`))
	ok, transient := res.class()
	if !ok {
		d.askedToWait(res.retryAfter) // for the next probe
	}
	keyTaken := ok || (res.err == nil && res.blamesCalls())
	answered := res.err == nil && res.status < 500 // 5xx: Segment, or a proxy before it, is down
	if answered && transient && res.retryAfter > 0 {
		// Up now, the held calls would go at once: wait as asked, and ask again.
		return fmt.Errorf("segment at %s asks to wait %v: HTTP %d", d.s.where, res.retryAfter, res.status)
	}
	var ce *CallError
	if keyTaken || (answered && !refusesEveryCall(res) && !(errors.As(down, &ce) && ce.Cause == CauseUnauthorized)) {
		if d.up() && down != nil {
			d.s.log.Infof("Segment at %s takes calls under %s again: sending", d.s.where, d.label)
		}
		return nil
	}
	if res.err != nil {
		return fmt.Errorf("segment at %s is unreachable: %s", d.s.where, res.detail)
	}
	if refusesEveryCall(res) {
		// Found by a probe after an outage, the refusal is news: logged once.
		ce := d.refusedKey(res)
		d.markDown(ce)
		return ce
	}
	return fmt.Errorf("segment at %s is unreachable: HTTP %d %s", d.s.where, res.status, res.detail)
}
