package segment

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
)

// runSummary is the line the output closes with. With the input's, it
// accounts for every event: read = sent + failed + unconfirmed + what the
// mapping filtered out (deleted() leaves no other trace).
func (o *output) runSummary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Segment output closed: %d calls %s, %d failed", o.s.metrics.sent.total(), o.sentVerb(), o.s.metrics.failed.total())
	if by := o.s.metrics.failed.String(); by != "" {
		fmt.Fprintf(&b, " (%s)", by)
	}
	fmt.Fprintf(&b, ", %d unconfirmed at shutdown. Failed calls go to the dead letter output where a fallback routes them"+
		" (the shipped configs do), unconfirmed ones back to the input to deliver again", o.unconfirmed.Load())
	if cause := o.downCause(); cause != "" {
		// Batches held for Segment are not counted here: the pipeline nacks them.
		fmt.Fprintf(&b, "; Segment was not taking calls (%s), so the calls held for it were not sent either", cause)
		return b.String()
	}
	b.WriteString("; events the input read that are not counted here were filtered out by the mapping")
	return b.String()
}

func (o *output) sentVerb() string {
	if o.dryRun {
		return "printed (dry run, nothing sent)"
	}
	return "sent"
}

// downCause is why Segment is not taking calls, or "" while it is.
func (o *output) downCause() string {
	var down *CallError
	if o.closing != nil && errors.As(o.s.routes.downErr(), &down) {
		return down.Cause
	}
	return ""
}

// logSummaries logs, every tick until the output closes, the calls sent and
// failed since the last tick. A pipeline that runs for ever closes with no
// summary, and a mapping that filters out every event, or a key whose calls
// all fail, would otherwise show only in the metrics. The line comes even
// when no call came: the output cannot tell a mapping that filtered out
// everything from an input that read nothing (deleted() leaves no trace,
// and components share no counts), so it says both, and the input's own
// line of the interval says which.
func (o *output) logSummaries(ticker clockwork.Ticker) {
	defer ticker.Stop()
	period := o.summaryPeriod
	var lastSent int64
	lastFailed := map[string]int64{}
	for {
		select {
		case <-ticker.Chan():
		case <-o.closing.Done():
			return
		}
		sent, failed := o.s.metrics.sent.total(), o.s.metrics.failed.counts()
		line, warn := o.intervalSummary(period, sent-lastSent, subtract(failed, lastFailed))
		if warn {
			o.s.log.Warnf("%s", line)
		} else {
			o.s.log.Infof("%s", line)
		}
		lastSent, lastFailed = sent, failed
	}
}

// intervalSummary is the line of an interval in which sent calls were sent
// and failed ones failed, by cause; warn when none was sent.
func (o *output) intervalSummary(period time.Duration, sent int64, failed map[string]int64) (string, bool) {
	total := sumCounts(failed)
	var b strings.Builder
	fmt.Fprintf(&b, "Segment output, last %v: %d calls %s, %d failed", period, sent, o.sentVerb(), total)
	if by := formatCounts(failed); by != "" {
		fmt.Fprintf(&b, " (%s)", by)
	}
	switch cause := o.downCause(); {
	case cause != "":
		fmt.Fprintf(&b, "; Segment is not taking calls (%s): the calls held for it wait in the pipeline", cause)
	case sent > 0:
		return b.String(), false
	case total > 0:
		b.WriteString("; none was sent: every call failed, to the dead letter output where a fallback routes them")
	default:
		b.WriteString("; no call reached the output: the mapping filtered out (or could not map) every event the input read meanwhile, or the input read none (its own summary line says how many it read)")
	}
	return b.String(), true
}
