package brazecurrents

import (
	"context"
	"errors"
	"fmt"
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
// though its events fitted. Any request beside one of a chunked body (then held
// at max_body_size until read) met it, and one of sized bodies whenever the
// budget was nearly taken.
func TestHTTPInputBudgetGrowsAheadOfWaiters(t *testing.T) {
	body := paddedBody(600)
	for _, c := range []struct {
		name string
		size int64
	}{{"sized", int64(len(body))}, {"chunked", -1}} {
		t.Run(c.name, func(t *testing.T) {
			// Over half the budget: the second body cannot be held beside the
			// first, but the first's events fit.
			in, url := startAckedInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 30s")
			rest, first := postHeld(t, url, body, c.size)
			second := postAsync(http.DefaultClient, url, body)
			for waitingToTake(in.buffered) < 1 {
				runtime.Gosched()
			}
			rest()
			for i, answer := range []<-chan reply{first, second} {
				if r := <-answer; r.status != http.StatusOK {
					t.Fatalf("request %d: %d %q, want 200", i+1, r.status, r.body)
				}
			}
		})
	}
}

// TestHTTPInputBudgetRefusesOneOfStuckGrowers: requests that all hold their
// bodies and all wait for their events' share, none fitting, would each
// wait for the others to give theirs back: the last to wait is refused (503,
// Braze retries it), and the other goes through. Both waited out the
// timeout and were answered 503, at every retry of a burst that filled the
// budget with bodies at once.
func TestHTTPInputBudgetRefusesOneOfStuckGrowers(t *testing.T) {
	// Two bodies fit in the budget, but not their events' 128 bytes more.
	body := paddedBody(480)
	_, url := startAckedInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 30s")
	restA, a := postHeld(t, url, body, int64(len(body)))
	restB, b := postHeld(t, url, body, int64(len(body)))
	restA()
	restB()
	statuses := map[int]int{}
	for _, answer := range []<-chan reply{a, b} {
		r := <-answer
		statuses[r.status]++
		if r.status == http.StatusServiceUnavailable && !strings.Contains(r.body, "wait for room for the rest of their bodies or their events") {
			t.Errorf("the request refused: %q, want it refused as one of requests waiting for each other", r.body)
		}
	}
	if statuses[http.StatusOK] != 1 || statuses[http.StatusServiceUnavailable] != 1 {
		t.Fatalf("answers by status %v, want one 200 and one 503", statuses)
	}
}

// paddedBody is a request of testEvent, size bytes long.
func paddedBody(size int) string {
	head, tail := `{"events": [`+testEvent+`], "padding": "`, `"}`
	return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
}

// startAckedInput runs the input of conf, every request acknowledged as
// soon as it is read.
func startAckedInput(t *testing.T, conf string) (*httpInput, string) {
	t.Helper()
	in, url := startHTTPInput(t, conf)
	go func() {
		for {
			_, ack, err := in.ReadBatch(context.Background())
			if err != nil {
				return
			}
			_ = ack(context.Background(), nil)
		}
	}()
	return in, url
}

// postHeld POSTs body, of size bytes (-1: chunked), and returns once the
// input took the body's share of max_buffered_size and reads it: the
// request says Expect: 100-continue, so its body is sent only then. rest
// sends the rest of the body.
func postHeld(t *testing.T, url, body string, size int64) (rest func(), answer <-chan reply) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Expect", "100-continue")
	answer = doAsync(client, req)
	if _, err := pw.Write([]byte(body[:10])); err != nil {
		t.Fatal(err)
	}
	return func() {
		_, _ = pw.Write([]byte(body[10:]))
		pw.Close()
	}, answer
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
	b.done(900) // the first request: 600 taken, 300 grown
	b.done(100)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free != 1000 || b.holders != 0 {
		t.Fatalf("%d free and %d holders once all was given back, want 1000 and 0", b.free, b.holders)
	}
}

// TestHTTPInputChunkedBodiesReadTogether: bodies of unknown length (chunked,
// gzip) are charged as they are read, a chunk at a time, so that several
// are read at once. Each was charged max_body_size until read: with the
// defaults (both 8 MiB) one such body took the whole budget and the others
// waited for it, however small they were.
func TestHTTPInputChunkedBodiesReadTogether(t *testing.T) {
	const n = 4
	in, url := startAckedInput(t, "timeout: 30s")
	body := paddedBody(600)
	var rests []func()
	var answers []<-chan reply
	for range n {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer tok")
		answers = append(answers, doAsync(http.DefaultClient, req))
		go func() { _, _ = pw.Write([]byte(body[:10])) }()
		rests = append(rests, func() {
			_, _ = pw.Write([]byte(body[10:]))
			pw.Close()
		})
	}
	holding, waiting := budgetState(in.buffered)
	for holding+waiting < n { // every request is past its token, at the budget
		runtime.Gosched()
		holding, waiting = budgetState(in.buffered)
	}
	if waiting != 0 {
		t.Errorf("%d chunked bodies of 600 bytes: %d read at once and %d waiting for the budget, want all read at once", n, holding, waiting)
	}
	for _, rest := range rests {
		rest()
	}
	for i, answer := range answers {
		if r := <-answer; r.status != http.StatusOK {
			t.Fatalf("request %d: %d %q, want 200", i+1, r.status, r.body)
		}
	}
	// Past max_body_size, its chunks charged up to it: refused, and every
	// byte charged given back.
	req, _ := http.NewRequest(http.MethodPost, url, io.LimitReader(repeatByte(' '), in.maxBody+chunkSize))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer tok")
	if r := <-doAsync(http.DefaultClient, req); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a chunked body over max_body_size: %d %q, want 413", r.status, r.body)
	}
	in.buffered.mu.Lock()
	defer in.buffered.mu.Unlock()
	if in.buffered.free != in.maxBuf || in.buffered.holders != 0 {
		t.Errorf("%d of %d free and %d holders once every request was answered, want all free and none", in.buffered.free, in.maxBuf, in.buffered.holders)
	}
}

// budgetState is how many requests hold a share of b, and how many wait to
// take one.
func budgetState(b *budget) (holding, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holders, b.takes.Len()
}

// TestReadChunkedChargesBeforeReading: a body of unknown length never holds
// more than it was charged: every byte read lands in a chunk charged
// before. Charged as it is read, this is what keeps the input's memory
// within max_buffered_size; a charge refused ends the read with its error.
func TestReadChunkedChargesBeforeReading(t *testing.T) {
	body := strings.Repeat("x", 3*chunkSize+100)
	var charged int64
	r := &chargeCheck{t: t, rest: body, charged: &charged}
	data, err := readChunked(r, func(n int64) error {
		charged = max(charged, n)
		return nil
	})
	if err != nil || string(data) != body {
		t.Fatalf("read %d bytes (%v), want the body's %d", len(data), err, len(body))
	}
	if charged != 4*chunkSize {
		t.Errorf("charged %d for a body of %d, want the 4 chunks it takes, %d", charged, len(body), 4*chunkSize)
	}
	full := errors.New("no room")
	r = &chargeCheck{t: t, rest: body, charged: &charged}
	charged = 0
	if _, err := readChunked(r, func(n int64) error {
		if n > 2*chunkSize {
			return full
		}
		charged = n
		return nil
	}); !errors.Is(err, full) || r.read > 2*chunkSize {
		t.Errorf("with room for 2 chunks: %v after %d bytes read, want the charge's error after at most %d", err, r.read, 2*chunkSize)
	}
}

// chargeCheck reads rest a few bytes at a time, failing t when a read could
// fill memory past what was charged.
type chargeCheck struct {
	t       *testing.T
	rest    string
	read    int64
	charged *int64
}

func (c *chargeCheck) Read(p []byte) (int, error) {
	if c.read+int64(len(p)) > *c.charged {
		c.t.Errorf("a read into %d bytes after %d read, with %d charged", len(p), c.read, *c.charged)
	}
	if c.rest == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1000)], c.rest)
	c.rest = c.rest[n:]
	c.read += int64(n)
	return n, nil
}

// TestHTTPInputTakesUnknownLengthBodiesNearTheLimit: with the defaults
// (max_body_size and max_buffered_size 8 MiB), a chunked or a gzip body
// just within max_body_size is answered 200. Its copy out of the chunks is
// held beside them for a moment, uncharged: charging it would mean refusing
// such a body for good (413), and Braze retries a 413 as it is, so its
// events would never arrive. A body of many events and one of a long
// string; every byte charged is given back once it is answered.
func TestHTTPInputTakesUnknownLengthBodiesNearTheLimit(t *testing.T) {
	in, url := startAckedInput(t, "")
	event := `{"event_type": "users.behaviors.CustomEvent", "id": "%d", "properties": {"a": ["` + strings.Repeat("y", 30<<10) + `"]}}`
	var events []string
	for i := range int(in.maxBody-4*chunkSize) / len(event) {
		events = append(events, fmt.Sprintf(event, i))
	}
	many := `{"events": [` + strings.Join(events, ", ") + `]}`
	long := paddedBody(int(in.maxBody) - 2*eventCharge)
	for name, body := range map[string]string{"events of strings under a chunk": many, "a long string": long} {
		t.Run(name, func(t *testing.T) { postUnknownLength(t, in, url, body) })
	}
}

// postUnknownLength POSTs body chunked and gzipped, wanting 200 for each,
// and then the whole budget free.
func postUnknownLength(t *testing.T, in *httpInput, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer tok")
	for name, r := range map[string]reply{"chunked": <-doAsync(http.DefaultClient, req), "gzip": postEncoded(t, url, "gzip", gzipped(t, strings.NewReader(body)))} {
		if r.status != http.StatusOK {
			t.Errorf("a %s body of %d bytes, max_body_size %d: %d %q, want 200", name, len(body), in.maxBody, r.status, r.body)
		}
	}
	in.buffered.mu.Lock()
	defer in.buffered.mu.Unlock()
	if in.buffered.free != in.maxBuf || in.buffered.holders != 0 {
		t.Errorf("%d of %d free and %d holders once every request was answered, want all free and none", in.buffered.free, in.maxBuf, in.buffered.holders)
	}
}
