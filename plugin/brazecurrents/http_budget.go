package brazecurrents

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// budget is max_buffered_size, shared by the requests in flight. A request
// takes its body's share before reading it (take), in order of arrival, so
// that a large body is not passed over for ever by smaller ones behind it;
// once its body is read, it takes its events' share (grow) ahead of every
// request waiting to take: it holds its body meanwhile, and queued behind a
// request that could fit only once this one's share was given back, both
// waited out the timeout, though this one's events fitted. When every
// request holding a share waits to grow and none fits, they would wait for
// each other until their timeouts: the last to wait is refused
// (errBudgetStuck), and what it gives back may let the others through.
type budget struct {
	mu           sync.Mutex
	free         int64
	holders      int       // requests holding a share, from take to done
	takes, grows list.List // of *budgetWait, in order of arrival
}

type budgetWait struct {
	n       int64
	ready   chan struct{} // closed once n is the request's, or it is refused
	refused bool
}

var errBudgetStuck = errors.New("every request holding a share waits for more")

func newBudget(size int64) *budget { return &budget{free: size} }

// take waits until n is free and every request that came first was served.
func (b *budget) take(ctx context.Context, n int64) error { return b.wait(ctx, &b.takes, n) }

// grow waits until n more is free, ahead of the requests waiting to take.
func (b *budget) grow(ctx context.Context, n int64) error { return b.wait(ctx, &b.grows, n) }

// release gives n back, of a share the request keeps holding.
func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.serve()
}

// done gives back n, the rest of a request's share: it holds none now.
func (b *budget) done(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.holders--
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
		if w.refused {
			return errBudgetStuck
		}
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // served meanwhile: given back
		if !w.refused {
			b.free += n
		}
		if queue == &b.takes {
			b.holders--
		}
	default:
		queue.Remove(e)
	}
	b.serve() // a request that stops waiting may have held back others
	return ctx.Err()
}

// serve hands what is free to the requests growing, each that fits, refuses
// the last of them when all the requests holding a share wait to grow, then,
// while none waits to grow, hands what is free to those waiting to take, in
// order.
func (b *budget) serve() {
	for e := b.grows.Front(); e != nil; {
		next := e.Next()
		if e.Value.(*budgetWait).n <= b.free {
			b.grant(&b.grows, e)
		}
		e = next
	}
	if b.grows.Len() > 0 && b.grows.Len() == b.holders { // none fits, and nothing else is held
		w := b.grows.Remove(b.grows.Back()).(*budgetWait)
		w.refused = true
		close(w.ready)
	}
	for b.grows.Len() == 0 && b.takes.Len() > 0 && b.takes.Front().Value.(*budgetWait).n <= b.free {
		b.grant(&b.takes, b.takes.Front())
		b.holders++
	}
}

func (b *budget) grant(queue *list.List, e *list.Element) {
	w := queue.Remove(e).(*budgetWait)
	b.free -= w.n
	close(w.ready)
}
