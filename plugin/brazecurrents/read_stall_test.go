package brazecurrents

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// silentReader is a body whose bytes never come: a Read returns only when
// its context (the one the object was opened with) ends.
type silentReader struct {
	ctx    context.Context
	served io.Reader // read first, at once
}

func (r silentReader) Read(p []byte) (int, error) {
	if n, _ := r.served.Read(p); n > 0 {
		return n, nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (silentReader) Close() error { return nil }

// TestStallGuardEndsASilentRead: a Read that waits read_timeout for the
// bucket ends with an error naming the stall; time between reads (the
// pipeline not taking events) does not count, and 0 guards nothing.
func TestStallGuardEndsASilentRead(t *testing.T) {
	clock := clockwork.NewFakeClock()
	g, ctx, stop := newStallGuard(context.Background(), clock, time.Minute)
	defer stop()
	r := g.reader(silentReader{ctx: ctx, served: strings.NewReader("abc")})
	if n, err := r.Read(make([]byte, 8)); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	clock.Advance(10 * time.Minute) // between reads: not a stall
	if ctx.Err() != nil {
		t.Fatal("the time between reads counted as a stall")
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 8))
		done <- err
	}()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil { // the Read's timer
		t.Fatal(err)
	}
	clock.Advance(time.Minute - time.Second)
	select {
	case err := <-done:
		t.Fatalf("the read ended before read_timeout: %v", err)
	default:
	}
	clock.Advance(time.Second)
	err := stalledErr(ctx, <-done)
	if err == nil || !strings.Contains(err.Error(), "the bucket sent nothing for 1m0s (read_timeout)") {
		t.Fatalf("a silent read ended with %v", err)
	}
	if err := stalledErr(ctx, nil); err != nil {
		t.Fatalf("no error became %v", err)
	}

	_, ctx, stop = newStallGuard(context.Background(), clock, 0)
	defer stop()
	if ctx.Done() != nil {
		t.Fatal("read_timeout 0 still guards: the read's context can end")
	}
}

// TestCallCtxNamesTheTimeout: a call to the bucket that outlasts
// read_timeout fails naming it; one that ends first, or whose caller gives
// up, keeps its own error; 0 limits nothing.
func TestCallCtxNamesTheTimeout(t *testing.T) {
	ctx, done := callCtx(context.Background(), time.Millisecond)
	<-ctx.Done() // the call waits for an answer that never comes
	if err := done(ctx.Err()); err == nil || !strings.Contains(err.Error(), "the bucket sent nothing for 1ms (read_timeout)") ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call past read_timeout failed with %v", err)
	}
	_, done = callCtx(context.Background(), time.Hour)
	if err := done(io.ErrUnexpectedEOF); err != io.ErrUnexpectedEOF {
		t.Fatalf("a call's own error became %v", err)
	}
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, done = callCtx(parent, time.Hour)
	if err := done(ctx.Err()); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "read_timeout") {
		t.Fatalf("a call its caller gave up failed with %v", err)
	}
	if ctx, _ := callCtx(context.Background(), 0); ctx.Done() != nil {
		t.Fatal("read_timeout 0 still limits calls")
	}
}
