package brazecurrents

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHTTPInputBudgetGrowsAheadOfWaiters: a request whose body was read
// takes its events' share of max_buffered_size ahead of the requests waiting
// for room for their bodies. It queued behind them, holding its body's
// share: one that could fit only once this request's share was given back
// held it, both waited out the timeout and this one was answered 503,
// though its events fitted. Any request beside one of a chunked body (held
// at max_body_size until read) met it, and one of sized bodies whenever the
// budget was nearly taken.
func TestHTTPInputBudgetGrowsAheadOfWaiters(t *testing.T) {
	body := `{"events": [` + testEvent + `], "padding": "` + strings.Repeat("x", 500) + `"}`
	for _, c := range []struct {
		name string
		size int64
	}{{"sized", int64(len(body))}, {"chunked", -1}} {
		t.Run(c.name, func(t *testing.T) {
			// Over half the budget: the second body cannot be held beside the
			// first, but the first's events fit.
			in, url := startHTTPInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 30s")
			go func() {
				for {
					_, ack, err := in.ReadBatch(context.Background())
					if err != nil {
						return
					}
					_ = ack(context.Background(), nil)
				}
			}()
			// Expect: 100-continue: the client sends the body, and the pipe's
			// first write returns, only once the input took the body's share
			// and reads it.
			client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
			pr, pw := io.Pipe()
			req, _ := http.NewRequest(http.MethodPost, url, pr)
			req.ContentLength = c.size
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("Expect", "100-continue")
			first := doAsync(client, req)
			if _, err := pw.Write([]byte(body[:10])); err != nil {
				t.Fatal(err)
			}
			second := postAsync(http.DefaultClient, url, body)
			for waitingToTake(in.buffered) < 1 {
				runtime.Gosched()
			}
			_, _ = pw.Write([]byte(body[10:]))
			pw.Close()
			for i, answer := range []<-chan reply{first, second} {
				if r := <-answer; r.status != http.StatusOK {
					t.Fatalf("request %d: %d %q, want 200", i+1, r.status, r.body)
				}
			}
		})
	}
}

// waitingToTake is how many requests wait for their body's share.
func waitingToTake(b *budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.takes.Len()
}

// TestBudgetOrder: takes are served in order of arrival, a small one behind
// a large one too (else a large body could wait for ever); grows go ahead
// of them; a take that stops waiting lets the ones behind it through.
func TestBudgetOrder(t *testing.T) {
	b := newBudget(1000)
	if err := b.take(context.Background(), 600); err != nil {
		t.Fatal(err)
	}
	large, cancelLarge := context.WithCancel(context.Background())
	took := make(chan int64, 2)
	go func() {
		if b.take(large, 700) == nil {
			took <- 700
		}
	}()
	for waitingToTake(b) < 1 {
		runtime.Gosched()
	}
	go func() {
		if b.take(context.Background(), 100) == nil {
			took <- 100
		}
	}()
	for waitingToTake(b) < 2 {
		runtime.Gosched()
	}
	if err := b.grow(context.Background(), 300); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-took:
		t.Fatalf("a take of %d passed the one ahead of it", n)
	default:
	}
	cancelLarge()
	if n := <-took; n != 100 {
		t.Fatalf("took %d, want the 100 behind the take that stopped waiting", n)
	}
	b.release(1000)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free != 1000 {
		t.Fatalf("%d free once all was given back, want 1000", b.free)
	}
}
