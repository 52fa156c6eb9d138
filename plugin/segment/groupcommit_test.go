package segment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Two batches whose calls share one request: one batch's context ends (it
// is nacked, its calls still go), the other gets its own outcome, call by
// call, from the request's split: its good calls accepted, its bad one
// failed, none settled twice or left waiting.
func TestGroupCommitOutcomeSurvivesANeighboursCancel(t *testing.T) {
	api := segmentapi.StartT(t, testKey, segmentapi.WithMaxCallBytes(1500))
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	api.OnRequest(func(*http.Request, []segmentapi.Call) {
		if held.CompareAndSwap(false, true) { // the first request only
			close(entered)
			<-release
		}
	})
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_requests_in_flight: 1}`, testKey, api.URL()))
	blocker := make(chan error, 1)
	go func() { blocker <- out.WriteBatch(context.Background(), trackBatch(1, 100, "x")) }()
	<-entered // the only slot is taken: the next batches' calls queue together

	cancelled, cancel := context.WithCancel(context.Background())
	x, y := trackBatch(3, 0, "x"), trackBatch(4, 10, "y")
	y[2] = trackBatch(1, 12, strings.Repeat("b", 2000))[0] // over the stand-in's limit
	resX, resY := make(chan error, 1), make(chan error, 1)
	go func() { resX <- out.WriteBatch(cancelled, x) }()
	go func() { resY <- out.WriteBatch(context.Background(), y) }()
	d := out.s.routes.all[0]
	for waited := 0; ; waited++ {
		d.mu.Lock()
		queued := len(d.queue)
		d.mu.Unlock()
		if queued == len(x)+len(y) {
			break
		}
		if waited == 3000 {
			t.Fatalf("%d calls queued, want both batches' %d", queued, len(x)+len(y))
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not timing a result
	}
	cancel()
	if err := <-resX; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled batch: %v, want its context's error (nacked)", err)
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatalf("the first batch: %v", err)
	}
	for i, err := range batchErrors(y, <-resY) {
		if bad := i == 2; bad != (err != nil) || (bad && !IsPermanent(err)) {
			t.Errorf("call %d of the other batch: %v (bad: %v)", i, err, bad)
		}
	}
	for _, id := range []string{"m-0", "m-1", "m-2", "m-10", "m-11", "m-13"} {
		if api.Count(id) != 1 {
			t.Errorf("%s accepted %d times, want once (the cancelled batch's calls still go)", id, api.Count(id))
		}
	}
}
