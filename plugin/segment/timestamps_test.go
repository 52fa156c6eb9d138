package segment

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Events keep the time Braze gave them however long their delivery took:
// Segment moves each call's timestamp by receivedAt − sentAt, and the
// stand-in keeps the timestamps as Segment would. Here the first attempt
// fails after 20 s and the retry is accepted.
func TestRetriedEventsKeepTheirTime(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 29, 0, 59, 50, 0, time.UTC))
	srv := segmentapi.StartT(t, testKey, segmentapi.WithClock(clock))
	srv.FailNext(1, http.StatusServiceUnavailable)
	var requests atomic.Int32
	srv.OnRequest(func(*http.Request, []segmentapi.Call) {
		if requests.Add(1) == 1 {
			clock.Advance(20 * time.Second) // the first attempt takes 20 s, then fails
		}
	})
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	out.s.clock = clock
	const at = "2026-03-28T17:04:05Z"
	batch := make(service.MessageBatch, 3)
	for i := range batch {
		batch[i] = service.NewMessage(fmt.Appendf(nil,
			`{"type":"track","event":"Email Sent","userId":"u%d","messageId":"m-%d","timestamp":%q}`, i, i, at))
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want, _ := time.Parse(time.RFC3339, at)
	for i := range batch {
		if got, ok := srv.Timestamp(fmt.Sprintf("m-%d", i)); !ok || !got.Equal(want) {
			t.Errorf("m-%d: Segment keeps timestamp %v (accepted %v), want the event's %v", i, got.UTC(), ok, want)
		}
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one failed, one accepted)", n)
	}
}
