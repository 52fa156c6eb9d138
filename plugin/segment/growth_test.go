package segment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Months of production see Segment go down and come back many times. Each
// outage (unreachable_after passes, the output goes down, Connect's probe
// finds it back) must leave no goroutine or connection behind.
func TestOutagesAndRecoveriesLeaveNoGoroutines(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, unreachable_after: 30s, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	clock := clockwork.NewFakeClock()
	out.s.clock = clock
	srv.OnRequest(func(*http.Request, []segmentapi.Call) { clock.Advance(10 * time.Second) })
	cycle := func(i int) {
		srv.Outage503(true)
		batch := trackBatch(3, 3*i, "x")
		if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
			t.Fatalf("outage %d: %v, want the output down", i, err)
		}
		srv.Outage503(false)
		if err := out.Connect(context.Background()); err != nil {
			t.Fatalf("recovery %d: %v", i, err)
		}
		if err := out.WriteBatch(context.Background(), batch); err != nil {
			t.Fatalf("after recovery %d: %v", i, err)
		}
	}
	cycle(0) // the first opens the connections kept alive
	runtime.GC()
	before := runtime.NumGoroutine()
	const cycles = 50
	for i := 1; i <= cycles; i++ {
		cycle(i)
	}
	// Goroutines that are ending (a response body's reader) may linger a
	// moment: wait for them, with a bound, instead of sleeping.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Fatalf("%d goroutines before %d outages, %d after", before, cycles, after)
	}
	t.Logf("%d goroutines before %d outages, %d after", before, cycles, runtime.NumGoroutine())
}
