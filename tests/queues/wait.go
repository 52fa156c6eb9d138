package queues

import (
	"context"
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test once ctx ends:
// for what a queue server or a client shows only when asked.
func Eventually(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}
