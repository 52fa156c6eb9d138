package brazecurrents

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// An input stopped while an object is part read (its first batch acked, the
// next one waiting for the pipeline) leaves the object for the next run:
// the restart reads it again, and its events not yet delivered are not lost.
func TestInputStoppedMidObjectReadsItAgain(t *testing.T) {
	dir := t.TempDir()
	want := hourFile(t, dir, emailSend, at14(0), 0) // 5 events
	conf := fmt.Sprintf("url: file://%s\nbatch_size: 1\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true", dir)
	in, err := inputOf(t, conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in.clock = clockwork.NewFakeClockAt(at14(30))
	if err := connectOnClock(ctx, in, in.clock.(*clockwork.FakeClock)); err != nil {
		t.Fatal(err)
	}
	batch, ack, err := in.ReadBatch(ctx)
	if err != nil || len(batch) != 1 {
		t.Fatalf("first batch: %d events, %v", len(batch), err)
	}
	if err := ack(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The reader waits to hand out the second batch when the input stops.
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}

	r := startClockRun(t, conf, at14(35))
	select {
	case <-r.done: // a one-pass run: it ends once it read everything
	case <-ctx.Done():
		t.Fatal("the restarted run never ended")
	}
	expectExactly(t, r.got, want)
}
