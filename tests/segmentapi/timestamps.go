package segmentapi

import (
	"time"

	"github.com/jonboulle/clockwork"
)

// Segment corrects each call's timestamp for the sender's clock skew
// (segment-docs, Spec: Common Fields, Timestamps): the timestamp it keeps
// and passes on is receivedAt − (sentAt − timestamp), receivedAt being its
// own clock when the call arrived and sentAt the call's, else its batch's.
// A call without a timestamp is stamped receivedAt. The stand-in keeps the
// corrected timestamp of each call it accepts, so that tests can check that
// events keep their own time however late or how many times they were sent.
// What Segment does without sentAt, or with a timestamp it cannot read, is
// not documented: the stand-in keeps the timestamp as sent (the docs'
// formula with sentAt taken as receivedAt), and stamps an unreadable one
// receivedAt.

// WithClock sets the clock that stamps receivedAt (the real one by default),
// to share a fake clock with the client under test.
func WithClock(c clockwork.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// correctedTimestamp is the timestamp Segment keeps for call c received at
// receivedAt.
func correctedTimestamp(c *scannedCall, receivedAt time.Time) time.Time {
	ts, ok := isoTime(c.f[fTimestamp])
	if !ok {
		return receivedAt
	}
	sentAt, ok := isoTime(c.f[fSentAt])
	if !ok {
		return ts
	}
	return receivedAt.Add(-sentAt.Sub(ts))
}

// isoTime reads a raw JSON string as an ISO-8601 date and time.
func isoTime(raw []byte) (time.Time, bool) {
	if !isString(raw) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(unquote(raw)))
	return t, err == nil
}

// Timestamp is the timestamp Segment would keep for the call with messageID
// (corrected for clock skew, as above) when it was first accepted: later
// copies are duplicates Segment drops. It panics on a server started
// WithRecordIDsOnly, which keeps no timestamps.
func (s *Server) Timestamp(messageID string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.keepCalls() {
		panic("segmentapi: Timestamp on a server started WithRecordIDsOnly, which keeps no timestamps")
	}
	t, ok := s.rec.stamps[messageID]
	return t, ok
}
