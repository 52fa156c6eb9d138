package segment

import (
	"errors"
	"fmt"
	"net/http"
)

// Causes of failed calls, as reported in errors and in the
// segment_calls_failed metric.
const (
	CauseInvalid   = "invalid"   // not a valid Segment call; never sent
	CauseTooLarge  = "too_large" // over Segment's 32 KB per call; never sent
	CauseRejected  = "rejected"  // Segment answered with a permanent error status
	CauseTransient = "transient" // still failing after the configured retries
	CauseShutdown  = "shutdown"  // the output closed before Segment answered
	// CauseNoWriteKey: write_keys has no key for the call's route and there
	// is no default write_key; never sent.
	CauseNoWriteKey = "no_write_key"
	// CauseUnreachable: no request accepted for unreachable_after. The batch
	// is handed back to Connect as not connected, which marks the output down
	// (so /ready reports it) and retries once Segment answers.
	CauseUnreachable = "unreachable"
	// CauseUnauthorized: Segment refused the write key (401, 403), or the
	// endpoint or a proxy refused the request whatever its calls (404, 405,
	// 407, 415, 501, 505, a redirect, a 2xx web page, a 400 or 422 web page):
	// every call would fail
	// alike, so they are held as for an outage, never dead-lettered.
	CauseUnauthorized = "unauthorized"
)

// failedCauses are the causes segment_calls_failed counts: those of calls
// that fail. Calls of CauseUnreachable and CauseUnauthorized are held for
// Segment, not failed.
var failedCauses = []string{CauseInvalid, CauseTooLarge, CauseRejected, CauseNoWriteKey, CauseTransient, CauseShutdown}

// CallError is the error of one call that Segment did not accept. Permanent
// errors will never succeed as they are: route them to a dead letter output
// (fallback, reject_errored). The others may succeed on redelivery.
type CallError struct {
	Cause     string
	Status    int // HTTP status, when Segment answered
	Permanent bool
	Detail    string
}

func (e *CallError) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Status != 0 {
		return fmt.Sprintf("segment: %s failure (%s): HTTP %d %s: %s", kind, e.Cause, e.Status, http.StatusText(e.Status), e.Detail)
	}
	return fmt.Sprintf("segment: %s failure (%s): %s", kind, e.Cause, e.Detail)
}

// IsPermanent reports whether err is a call error that retrying cannot fix.
func IsPermanent(err error) bool {
	var ce *CallError
	return errors.As(err, &ce) && ce.Permanent
}
