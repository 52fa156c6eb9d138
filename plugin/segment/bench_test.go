package segment

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// BenchmarkOutputToStandIn sends batches of 500 Currents-sized track calls
// (~600 bytes) through the output to the Segment stand-in on loopback, from
// 16 writers as with max_in_flight 16, and reports calls/s and the TCP
// connections opened per 1,000 batches (keep-alive reuse).
// Run: go test ./plugin/segment -run '^$' -bench OutputToStandIn -benchtime 400x
func BenchmarkOutputToStandIn(b *testing.B) {
	srv := segmentapi.StartT(b, testKey)
	out := newTestOutput(b, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	payload := strings.Repeat("p", 400)
	const writers, callsPerBatch = 16, 500
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				batch := trackBatch(callsPerBatch, int(n)*callsPerBatch, payload)
				if err := out.WriteBatch(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stats := srv.Stats()
	if stats.Accepted != b.N*callsPerBatch {
		b.Fatalf("%d calls accepted, %d sent", stats.Accepted, b.N*callsPerBatch)
	}
	b.ReportMetric(float64(b.N*callsPerBatch)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(stats.ConnectionsOpened)*1000/float64(b.N), "conns/1000batches")
	b.ReportMetric(float64(stats.Requests)/float64(b.N), "requests/batch")
}
