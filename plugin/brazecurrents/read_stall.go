package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jonboulle/clockwork"
)

// stallGuard ends a read of an object that waits longer than timeout for
// the bucket: a connection gone silent (a NAT or load balancer that forgot
// it, a hung proxy that still acknowledges) would otherwise hold the read,
// and one of the input's reading slots, until TCP gives up (about 15
// minutes for a peer gone, never behind such a proxy). Only the time spent
// opening the object and inside its Read counts: a read waiting for the
// pipeline to take its events (Segment down) is not stalled.
type stallGuard struct {
	r       io.ReadCloser
	timeout time.Duration
	timer   clockwork.Timer // nil: no guard
}

// errReadStalled is the cause of a read cancelled by its stallGuard.
type errReadStalled struct{ timeout time.Duration }

func (e errReadStalled) Error() string {
	return fmt.Sprintf("the bucket sent nothing for %v (read_timeout): the connection went silent", e.timeout)
}

// newStallGuard returns a guard and the context to open the object with,
// which the guard cancels with errReadStalled; stop releases both. A
// timeout of 0 guards nothing.
func newStallGuard(ctx context.Context, clock clockwork.Clock, timeout time.Duration) (*stallGuard, context.Context, func()) {
	g := &stallGuard{timeout: timeout}
	if timeout <= 0 {
		return g, ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	g.timer = clock.AfterFunc(timeout, func() { cancel(errReadStalled{timeout}) })
	g.timer.Stop() // armed only while waiting for the bucket
	return g, ctx, func() { g.timer.Stop(); cancel(nil) }
}

func (g *stallGuard) arm() {
	if g.timer != nil {
		g.timer.Reset(g.timeout)
	}
}

func (g *stallGuard) disarm() {
	if g.timer != nil {
		g.timer.Stop()
	}
}

// reader guards r's reads.
func (g *stallGuard) reader(r io.ReadCloser) io.ReadCloser {
	g.r = r
	return g
}

func (g *stallGuard) Close() error { return g.r.Close() }

func (g *stallGuard) Read(p []byte) (int, error) {
	g.arm()
	defer g.disarm()
	return g.r.Read(p)
}

// stalledErr is err, or the stall that caused it when ctx (the guard's)
// was cancelled by one.
func stalledErr(ctx context.Context, err error) error {
	var stall errReadStalled
	if err != nil && errors.As(context.Cause(ctx), &stall) {
		return fmt.Errorf("%w (%w)", stall, err)
	}
	return err
}

// callCtx limits one call to the bucket other than an object's body (a page
// of a listing, the checkpoint object) to timeout, read_timeout, for the
// same reason and with the same error; 0 leaves it unlimited. done releases
// the limit and returns the call's error, naming the timeout when it caused
// it.
func callCtx(ctx context.Context, timeout time.Duration) (context.Context, func(error) error) {
	if timeout <= 0 {
		return ctx, func(err error) error { return err }
	}
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, errReadStalled{timeout})
	return cctx, func(err error) error {
		err = stalledErr(cctx, err)
		cancel()
		return err
	}
}
