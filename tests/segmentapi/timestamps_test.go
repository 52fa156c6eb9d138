package segmentapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// The stand-in keeps each call's timestamp as Segment corrects it:
// receivedAt − (sentAt − timestamp), with the call's sentAt, else its
// batch's; receivedAt for a call without one; as sent without sentAt.
func TestTimestampsCorrectedForClockSkew(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 29, 1, 0, 10, 0, time.UTC))
	s := segmentapi.StartT(t, writeKey, segmentapi.WithClock(clock))
	c := newClient(t)
	body := `{"batch":[
		{"type":"track","event":"E","userId":"u","messageId":"late","timestamp":"2026-03-29T00:30:00Z"},
		{"type":"track","event":"E","userId":"u","messageId":"own","timestamp":"2026-03-29T00:30:00Z","sentAt":"2026-03-29T01:00:00Z"},
		{"type":"track","event":"E","userId":"u","messageId":"none"}
	],"sentAt":"2026-03-29T00:59:50.000Z"}`
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(body)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey,
		[]byte(`{"event":"E","userId":"u","messageId":"unsent","timestamp":"2026-03-29T00:30:00+02:00"}`)), http.StatusOK, "", -1)
	// A duplicate sent later changes nothing: Segment drops it.
	clock.Advance(time.Hour)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(body)), http.StatusOK, "", -1)

	for id, want := range map[string]string{
		"late":   "2026-03-29T00:30:20Z", // sent 20 s before Segment's clock: moved 20 s later
		"own":    "2026-03-29T00:30:10Z",
		"none":   "2026-03-29T01:00:10Z",
		"unsent": "2026-03-28T22:30:00Z",
	} {
		got, ok := s.Timestamp(id)
		if w, _ := time.Parse(time.RFC3339, want); !ok || !got.Equal(w) {
			t.Errorf("%s: timestamp %v (kept %v), want %s", id, got.UTC(), ok, want)
		}
	}
	if _, ok := s.Timestamp("missing"); ok {
		t.Error("a timestamp for a call never sent")
	}
}
