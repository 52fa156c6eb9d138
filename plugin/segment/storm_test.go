// The fault storm of issue 13: on the output before its rewrite it failed at
// its 4 minute deadline (12,054 of 20,000 calls arrived).

package segment_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestOneMessageInputFaultStorm pushes 20,000 one-message calls, many in
// flight, through the output at its defaults, to a stand-in answering 15%
// of requests 503, 10% 429 with Retry-After: 1 and dropping 5% of
// connections. Every call must be acked and accepted. The stand-in drops a
// connection after reading the request and records nothing from it, so no
// fault forces a duplicate: there must be none.
//
// Speed is logged, never asserted (benchmarks measure it); the deadline
// only keeps a collapse from hanging the run.
func TestOneMessageInputFaultStorm(t *testing.T) {
	const calls, deadline = 20_000, 4 * time.Minute
	api := segmentapi.StartT(t, streamWriteKey, segmentapi.WithRecordIDsOnly())
	if err := api.Storm(segmentapi.StormSpec{Fail503: 0.15, RateLimit429: 0.10, RetryAfter: time.Second, Drop: 0.05, Seed: 13}); err != nil {
		t.Fatal(err)
	}
	r := startStream(t, defaultOutput(api))

	ids := messageIDs("storm", calls)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var acked, timedOut atomic.Int64
	var mu sync.Mutex
	var nacks []error
	began := time.Now()
	pushConcurrently(ctx, r.send, calls, inputInFlight,
		func(i int) service.MessageBatch { return oneTrack(ids[i]) },
		func(_ int, err error) {
			switch {
			case err == nil:
				acked.Add(1)
			case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
				timedOut.Add(1)
			default:
				mu.Lock()
				nacks = append(nacks, err)
				mu.Unlock()
			}
		})
	elapsed := time.Since(began)

	st := api.Stats()
	arrived := api.UniqueMessageIDs()
	t.Logf("%d of %d calls arrived and %d acked in %v (%.0f calls/s): %d requests, %d connections, faults served %v, %d duplicates",
		arrived, calls, acked.Load(), elapsed.Round(time.Millisecond), float64(arrived)/elapsed.Seconds(),
		st.Requests, st.ConnectionsOpened, st.Faulted, api.Duplicates())
	if n := timedOut.Load(); n > 0 {
		t.Fatalf("after %v, %d calls were still unacked: %d of %d arrived", deadline, n, arrived, calls)
	}
	if len(nacks) > 0 {
		t.Fatalf("%d calls nacked, e.g. %v", len(nacks), nacks[0])
	}
	requireDelivered(t, api, ids)
	if d := api.Duplicates(); d != 0 {
		t.Errorf("%d duplicates: the stand-in records nothing from a dropped request, so no fault forces one", d)
	}
}
