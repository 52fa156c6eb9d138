package brazecurrents

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestHTTPInputSlowBodyIsRetried: a body still not fully sent when the
// timeout passes (a slow link, not a bad request) is answered 503 with
// Retry-After. Braze treats a 400 as a malformed event: it splits the batch
// into single events and drops for good each one answered 400 again, so a
// 400 here lost the events of every request that met a slow link twice.
func TestHTTPInputSlowBodyIsRetried(t *testing.T) {
	_, url := startHTTPInput(t, "timeout: 300ms")
	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/currents"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"events": [` + testEvent + `]}`
	// Half the declared body, then nothing: the server's read deadline ends
	// the wait, not this test.
	if _, err := conn.Write([]byte("POST /currents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body[:len(body)/2])); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("a body cut short by the timeout: %d (Retry-After %q), want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// TestHTTPInputCloseEndsWaitsForBudget: a request waiting for its share of
// max_buffered_size (Segment down, the budget held by events in flight) is
// answered 503 "shutting down" as soon as the input closes. It waited out
// its timeout, holding Close (and Connect's shutdown, past its own
// shutdown_timeout with the default 30s) and then blamed the budget.
func TestHTTPInputCloseEndsWaitsForBudget(t *testing.T) {
	in, url := startHTTPInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 10s")
	// Over half the budget: the second cannot be held beside the first.
	body := `{"events": [` + testEvent + `], "padding": "` + strings.Repeat("x", 600) + `"}`
	first := postAsync(http.DefaultClient, url, body)
	readRequest(t, in) // handed over, never acknowledged
	second := postAsync(http.DefaultClient, url, body)
	for in.counter.Load() < 2 { // the second is being served
		runtime.Gosched()
	}
	closed := make(chan error, 1)
	go func() { closed <- in.Close(context.Background()) }()
	for _, answer := range []<-chan reply{first, second} {
		if r := <-answer; r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "shutting down") {
			t.Fatalf("a request in flight when the input closed: %d %q, want 503 saying it is shutting down", r.status, r.body)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
