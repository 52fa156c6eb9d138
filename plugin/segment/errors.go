package segment

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Causes of failed calls, as reported in errors and in the
// segment_calls_failed metric.
const (
	CauseInvalid   = "invalid"   // not a valid Segment call; never sent
	CauseTooLarge  = "too_large" // over Segment's 32 KB per call; never sent
	CauseRejected  = "rejected"  // Segment answered with a permanent error status
	CauseTransient = "transient" // still failing after the configured retries
	CauseShutdown  = "shutdown"  // the output closed before Segment answered
	// CauseUnreachable: no request accepted for unreachable_after. The batch
	// is handed back to Connect as not connected, which marks the output down
	// (so /ready reports it) and retries once Segment answers.
	CauseUnreachable = "unreachable"
	// CauseUnauthorized: Segment refused the write key (401, 403) or the
	// endpoint has no such API (404): every call would fail alike, so they are
	// held as for an outage, never dead-lettered.
	CauseUnauthorized = "unauthorized"
)

// gatewayDown says whether a status comes from a proxy in front of Segment,
// or Segment's edge, rather than Segment's API.
func gatewayDown(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

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

// statusClass says how to treat an HTTP answer from Segment. Segment's docs:
// 400/401/403/404/413/422 are permanent; 408, 429 and 5xx (but 501 and 505,
// which no retry changes) are transient. Other statuses are permanent, so
// nothing unexpected is retried for ever.
func statusClass(status int) (ok, transient bool) {
	switch {
	case status >= 200 && status < 300:
		return true, false
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return false, true
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return false, false
	case status >= 500:
		return false, true
	}
	return false, false
}

// splittable statuses blame the request's content: splitting a batch finds
// the calls at fault, so the rest are not dead-lettered with them.
func splittable(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity
}

// scrubber removes the write key, plain or in a Basic auth header, from text
// that may reach logs or errors (say, a proxy echoing the request).
type scrubber struct{ secrets []string }

func newScrubber(writeKey string) scrubber {
	if writeKey == "" {
		return scrubber{}
	}
	basic := base64.StdEncoding.EncodeToString([]byte(writeKey + ":"))
	return scrubber{secrets: []string{basic, writeKey}}
}

func (s scrubber) clean(text string) string {
	for _, secret := range s.secrets {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	return text
}
