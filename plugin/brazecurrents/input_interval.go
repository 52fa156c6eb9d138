package brazecurrents

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
)

// inputCounts are the input's running totals at one moment: what it did in
// an interval is the difference of two.
type inputCounts struct {
	done, corrupt, abandoned               int64 // objects
	read, anonymous, noUser, acked, nacked int64 // events
	inFlight                               int   // objects being read or awaiting acks
}

func (in *currentsInput) counts() inputCounts {
	s := in.stats
	s.mu.Lock()
	c := inputCounts{done: s.objectsDone, corrupt: s.objectsCorrupt, abandoned: s.objectsAbandoned,
		read: s.eventsHanded, anonymous: s.eventsAnonymous, noUser: s.eventsNoUser, acked: s.eventsAcked, nacked: s.eventsNacked}
	s.mu.Unlock()
	in.mu.Lock()
	c.inFlight = len(in.inFlight)
	in.mu.Unlock()
	return c
}

// logSummaries logs, every period, what the input did in it. A run that
// watches or reads notifications never ends with a run summary, and a
// stall would otherwise leave no trace in the log, only in the metrics: the
// line comes even when nothing happened, so that its absence says something
// too. The ticker is on the input's clock, so that tests move through
// intervals, and made before the run starts: the first interval counts
// from there.
func (in *currentsInput) logSummaries(ctx context.Context, ticker clockwork.Ticker, period time.Duration) {
	defer ticker.Stop()
	var last inputCounts
	for {
		select {
		case <-ticker.Chan():
		case <-ctx.Done():
			return
		}
		now := in.counts()
		line, stalled := intervalSummary(last, now, period)
		if stalled {
			in.log.Warnf("%s", line)
		} else {
			in.log.Infof("%s", line)
		}
		last = now
	}
}

// intervalSummary says what happened between last and now, period apart,
// and whether the pipeline stalled: work was pending when the interval
// began, and none of it moved through the whole interval. An interval
// whose events were read near its end and not yet acknowledged is not a
// stall; the next one tells.
//
// The input cannot tell events the mapping filtered out from events
// delivered: both are acknowledged alike (deleted() leaves no trace). The
// segment output's own line of the interval says how many calls reached it.
func intervalSummary(last, now inputCounts, period time.Duration) (string, bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "Summary of the last %v: %d objects read (%d corrupt), %d left for a later pass, %d in flight; %d events read, %d acknowledged",
		period, now.done-last.done, now.corrupt-last.corrupt, now.abandoned-last.abandoned, now.inFlight,
		now.read-last.read, now.acked-last.acked)
	if n := now.nacked - last.nacked; n > 0 {
		fmt.Fprintf(&b, ", %d not (read again)", n)
	}
	fmt.Fprintf(&b, "; %d had no external_user_id (the mapping skips those unless include_anonymous, and always the %d with no user_id either)",
		now.anonymous-last.anonymous, now.noUser-last.noUser)
	settled := now.acked+now.nacked > last.acked+last.nacked
	awaiting := last.read - last.acked - last.nacked
	switch {
	case settled:
		return b.String(), false
	case awaiting > 0:
		fmt.Fprintf(&b, "; stalled: none of the %d events awaiting acknowledgement %v ago got it since (the segment output holds calls while Segment is down or refuses the key: see its log)",
			awaiting, period)
		return b.String(), true
	case last.inFlight > 0 && now.read == last.read && now.done+now.abandoned == last.done+last.abandoned:
		fmt.Fprintf(&b, "; stalled: %d objects were in flight %v ago, and since then none read an event, got done or failed",
			last.inFlight, period)
		return b.String(), true
	}
	return b.String(), false
}
