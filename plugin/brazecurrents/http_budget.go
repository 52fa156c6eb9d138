package brazecurrents

import (
	"container/list"
	"context"
	"sync"
)

// budget is max_buffered_size, shared by the requests in flight. A request
// takes its body's share before reading it (take), in order of arrival, so
// that a large body is not passed over for ever by smaller ones behind it;
// once its body is read, it takes its events' share (grow) ahead of every
// request waiting to take: it holds its body meanwhile, and queued behind a
// request that could fit only once this one's share was given back, both
// waited out the timeout, though this one's events fitted. Requests that
// all hold a body and all wait to grow, none fitting, still wait out the
// timeout: nothing is given back before.
type budget struct {
	mu           sync.Mutex
	free         int64
	takes, grows list.List // of *budgetWait, in order of arrival
}

type budgetWait struct {
	n     int64
	ready chan struct{} // closed once n is the request's
}

func newBudget(size int64) *budget { return &budget{free: size} }

// take waits until n is free and every request that came first was served.
func (b *budget) take(ctx context.Context, n int64) error { return b.wait(ctx, &b.takes, n) }

// grow waits until n more is free, ahead of the requests waiting to take.
func (b *budget) grow(ctx context.Context, n int64) error { return b.wait(ctx, &b.grows, n) }

// release gives n back.
func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.serve()
}

func (b *budget) wait(ctx context.Context, queue *list.List, n int64) error {
	w := &budgetWait{n: n, ready: make(chan struct{})}
	b.mu.Lock()
	e := queue.PushBack(w)
	b.serve()
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // served meanwhile: given back
		b.free += n
	default:
		queue.Remove(e)
	}
	b.serve() // a request that stops waiting may have held back others
	return ctx.Err()
}

// serve hands what is free to the requests growing, each that fits, then,
// while none waits to grow, to those waiting to take, in order.
func (b *budget) serve() {
	for e := b.grows.Front(); e != nil; {
		next := e.Next()
		if e.Value.(*budgetWait).n <= b.free {
			b.grant(&b.grows, e)
		}
		e = next
	}
	for b.grows.Len() == 0 && b.takes.Len() > 0 && b.takes.Front().Value.(*budgetWait).n <= b.free {
		b.grant(&b.takes, b.takes.Front())
	}
}

func (b *budget) grant(queue *list.List, e *list.Element) {
	w := queue.Remove(e).(*budgetWait)
	b.free -= w.n
	close(w.ready)
}
