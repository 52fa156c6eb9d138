package brazecurrents

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestHTTPInputDeadlineRunsFromArrival: a request's timeout runs from its
// arrival, its wait for max_buffered_size included: the body's read
// deadline is the one taken then. It was taken again once the budget was
// granted, so a request that waited for it could be answered only after up
// to twice the timeout (Braze's own may have given up). The clock is set
// back by the timeout while the request waits: a deadline taken at the
// grant is already past (the body refused 503 unread); the one taken at
// arrival is an hour away, and the request is served.
func TestHTTPInputDeadlineRunsFromArrival(t *testing.T) {
	res, metrics := promscrape.Resources(t)
	t.Cleanup(func() { wantStatusesListed(t, metrics) })
	in := newHTTPInput(t, res, "token: tok\nmax_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 1h")
	var back atomic.Int64 // how far the clock is set back, in nanoseconds
	in.now = func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }
	_, url := connectHTTPInput(t, in)

	// Over half the budget: the second cannot be held beside the first.
	body := paddedBody(600)
	first := postAsync(http.DefaultClient, url, body)
	_, ackFirst := readRequest(t, in) // holds the budget until acknowledged

	conn := dialInput(t, url)
	if _, err := io.WriteString(conn, "POST /currents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body[:10]); err != nil {
		t.Fatal(err)
	}
	for waitingToTake(in.buffered) < 1 {
		runtime.Gosched()
	}
	back.Store(int64(time.Hour))
	_ = ackFirst(context.Background(), nil)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("the first request: %d %q, want 200", r.status, r.body)
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	answer := make(chan reply, 1)
	go func() { answer <- replyOf(http.ReadResponse(bufio.NewReader(conn), nil)) }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read := make(chan service.AckFunc, 1)
	go func() {
		if _, ack, err := in.ReadBatch(ctx); err == nil {
			read <- ack
		}
	}()
	select {
	case ack := <-read:
		_ = ack(context.Background(), nil)
	case r := <-answer:
		t.Fatalf("a request that waited for the budget: %d %q before its events were handed over, want them handed over", r.status, r.body)
	}
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("a request that waited for the budget: %d %q, want 200", r.status, r.body)
	}
}
