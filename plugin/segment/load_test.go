package segment_test

// Load tests and benchmarks of the segment output's public behaviour: calls
// pushed through a real stream, the output configured only by YAML and
// observed only through acks, logs and the Segment stand-in, so that they
// hold whatever the output's internals.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// inputInFlight is how many transactions the producer keeps in flight, as a
// busy one-message input does (http_server under load, a queue input): each
// pusher waits for its batch's ack before pushing the next. The output's
// max_in_flight, at its default, decides how many it takes at once.
const inputInFlight = 1000

// pushConcurrently pushes batch(0) ... batch(n-1) from workers goroutines,
// each pushing one batch and waiting for its ack before taking the next, and
// reports every result to acked (called concurrently). It returns once every
// batch has its result; once ctx ends, the rest fail with ctx's error.
func pushConcurrently(ctx context.Context, send service.MessageBatchHandlerFunc, n, workers int,
	batch func(i int) service.MessageBatch, acked func(i int, err error)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				acked(i, send(ctx, batch(i)))
			}
		})
	}
	wg.Wait()
}

// oneTrack is a one-message batch: id's track call.
func oneTrack(id string) service.MessageBatch {
	return service.MessageBatch{service.NewMessage(trackCall(id, nil))}
}

// defaultOutput is the segment output with every setting at its default but
// the endpoint and the write key.
func defaultOutput(api *segmentapi.Server) map[string]any {
	return map[string]any{"segment": map[string]any{"write_key": streamWriteKey, "endpoint": api.URL()}}
}

// benchCalls measures calls/s through the output at its defaults: b.N track
// calls cut into batches of size, pushed inputInFlight batches at a time, to
// a stand-in that answers after 50 ms as Segment does from afar.
func benchCalls(b *testing.B, size int) {
	api := segmentapi.StartT(b, streamWriteKey, segmentapi.WithLatency(50*time.Millisecond), segmentapi.WithRecordIDsOnly())

	sb := service.NewStreamBuilder()
	sb.SetLogger(slog.New(slog.DiscardHandler))
	send, err := sb.AddBatchProducerFunc()
	if err != nil {
		b.Fatal(err)
	}
	if err := sb.AddOutputYAML("segment: {write_key: " + streamWriteKey + ", endpoint: " + api.URL() + "}"); err != nil {
		b.Fatal(err)
	}
	strm, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = strm.Run(context.Background()) }()
	b.Cleanup(func() { _ = strm.StopWithin(10 * time.Second) })

	batches := trackBatches(messageIDs("bench", b.N), size, nil)
	var failed atomic.Int64
	b.ResetTimer()
	began := time.Now()
	pushConcurrently(context.Background(), send, len(batches), inputInFlight,
		func(i int) service.MessageBatch { return batches[i] },
		func(_ int, err error) {
			if err != nil && failed.Add(1) == 1 {
				b.Error(err)
			}
		})
	elapsed := time.Since(began)
	b.StopTimer()
	if got := api.UniqueMessageIDs(); got != b.N {
		b.Fatalf("%d calls accepted, %d sent", got, b.N)
	}
	st := api.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(b.N)/float64(st.Requests), "calls/request")
}

// BenchmarkOneMessageCalls: one-message batches, as generate, http_server or
// a queue input emits them.
// Run: go test ./plugin/segment -run '^$' -bench OneMessageCalls -benchtime 2000x
func BenchmarkOneMessageCalls(b *testing.B) { benchCalls(b, 1) }

// BenchmarkBatchedCalls: batches of 100 calls, as the braze_currents input
// emits them.
// Run: go test ./plugin/segment -run '^$' -bench BatchedCalls -benchtime 20000x
func BenchmarkBatchedCalls(b *testing.B) { benchCalls(b, 100) }
