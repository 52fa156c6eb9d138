package brazecurrents

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestHTTPInputSlowBodyIsRetried: a body still not fully sent when the
// timeout passes (a slow link, not a bad request) is answered 503 with
// Retry-After. Braze treats a 400 as a malformed event: it splits the batch
// into single events and drops for good each one answered 400 again, so a
// 400 here lost the events of every request that met a slow link twice.
func TestHTTPInputSlowBodyIsRetried(t *testing.T) {
	_, url := startHTTPInput(t, "timeout: 300ms")
	conn := dialInput(t, url)
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

// TestHTTPInputRefusalDoesNotWaitForTheBody: a request refused before its
// body is read (no token, another path or method, a coding it cannot read)
// is answered at once, and its connection closed once the rest of the body
// was not sent within timeout. net/http read what was left of a body under
// 256 KiB before writing the answer, with no deadline: anyone without the
// token could hold a connection, and the input's Close, for ever by
// declaring a body and never sending it (no answer after 20s on the binary).
func TestHTTPInputRefusalDoesNotWaitForTheBody(t *testing.T) {
	_, url := startHTTPInput(t, "timeout: 300ms")
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/currents")
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"no token", "POST /currents HTTP/1.1\r\n", http.StatusUnauthorized},
		{"wrong token", "POST /currents HTTP/1.1\r\nAuthorization: Bearer nope\r\n", http.StatusUnauthorized},
		{"another path", "POST /other HTTP/1.1\r\nAuthorization: Bearer tok\r\n", http.StatusNotFound},
		{"GET", "GET /currents HTTP/1.1\r\nAuthorization: Bearer tok\r\n", http.StatusMethodNotAllowed},
		{"brotli", "POST /currents HTTP/1.1\r\nAuthorization: Bearer tok\r\nContent-Encoding: br\r\n", http.StatusUnsupportedMediaType},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() }) // before the input's: Close waits for the connection
		// Not a wait: the answer comes at once, or the test fails here
		// rather than hang.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		// 100 KB declared, 11 bytes sent, and nothing more.
		if _, err := conn.Write([]byte(c.head + "Host: x\r\nContent-Length: 100000\r\n\r\n{\"events\":[")); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: no answer while the body is unsent: %v", c.name, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, res.StatusCode, c.status)
		}
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after the answer the connection is kept (%v), want it closed", c.name, err)
		}
	}
}

// lineLog hands each line logged to the test.
type lineLog chan string

func (l lineLog) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // past what the test reads: never hold the logger
	}
	return len(p), nil
}

// TestHTTPInputNamesAClientThatLeft: a client that closes the connection
// while its events are in the pipeline (its own timeout, or a proxy's,
// shorter than the input's) is logged as such. The answer blamed the
// input's timeout ("not yet delivered within 1h0m0s (Segment down or
// refusing the key?)") long before it had passed.
func TestHTTPInputNamesAClientThatLeft(t *testing.T) {
	logs := make(lineLog, 64)
	b := service.NewResourceBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	res, stop, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(context.Background()) })
	in, url := startHTTPInputWith(t, res, "token: tok\ntimeout: 1h")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"events": [`+testEvent+`]}`))
	req.Header.Set("Authorization", "Bearer tok")
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	_, ack := readRequest(t, in)
	cancel() // the client gives up while the events are in the pipeline
	if err := <-done; err == nil {
		t.Fatal("the request was answered while its events were not acknowledged")
	}
	for line := range logs {
		// ": 503 " as respond logs it: a bare "503" also matches a
		// timestamp's milliseconds.
		if !strings.Contains(line, ": 503 ") {
			continue
		}
		if !strings.Contains(line, "not yet delivered when the client closed the connection after") || strings.Contains(line, "within 1h") {
			t.Errorf("the 503 of a client that left: %s", line)
		}
		break
	}
	_ = ack(context.Background(), nil)
}

// dialInput opens a connection to the input at url (…/currents), for a
// test that writes the request itself; closed when the test ends.
func dialInput(t *testing.T, url string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/currents"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
