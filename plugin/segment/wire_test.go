package segment

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// rawServer serves each connection with serve, on loopback, and counts them.
type rawServer struct {
	ln     net.Listener
	opened atomic.Int64
}

func startRawServer(t *testing.T, serve func(n int64, conn net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.opened.Add(1)
			wg.Go(func() {
				defer conn.Close()
				serve(n, conn, bufio.NewReader(conn))
			})
		}
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/v1/batch" }

// readRequest reads one request and its body; false once the client is gone.
func readRequest(br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err == nil
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"success\":true}"

func newTestWireClient(t *testing.T, url string, clock clockwork.Clock) *wireClient {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newWireClient(u, 4, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// wirePost sends one request as the sender does and returns its status and
// body, or the error.
func wirePost(c *wireClient, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := c.post(ctx, "Basic a2V5Og==", []byte(`{"batch":[]}`))
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

func TestWireRequestIsWhatSegmentReads(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	defer srv.Close()
	c := newTestWireClient(t, srv.URL+"/proxy/v1/batch?token=abc", clockwork.NewRealClock())
	status, answer, err := wirePost(c, 5*time.Second)
	if err != nil || status != 200 || answer != `{"success":true}` {
		t.Fatalf("got %d %q, %v", status, answer, err)
	}
	if got.Method != http.MethodPost || got.URL.RequestURI() != "/proxy/v1/batch?token=abc" || got.Host != strings.TrimPrefix(srv.URL, "http://") ||
		got.Header.Get("Authorization") != "Basic a2V5Og==" || got.Header.Get("Content-Type") != "application/json" ||
		got.Header.Get("User-Agent") != userAgent || got.ContentLength != int64(len(body)) || string(body) != `{"batch":[]}` || got.Proto != "HTTP/1.1" {
		t.Errorf("the server read %s %s %s host %q headers %v body %q", got.Method, got.URL, got.Proto, got.Host, got.Header, body)
	}
}

func TestWireKeepsConnectionsAlive(t *testing.T) {
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		for {
			if _, ok := readRequest(br); !ok {
				return
			}
			_, _ = io.WriteString(conn, okAnswer)
		}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	for i := range 5 {
		if status, _, err := wirePost(c, 5*time.Second); err != nil || status != 200 {
			t.Fatalf("request %d: %d, %v", i, status, err)
		}
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("%d connections for 5 requests one after the other, want 1", n)
	}
}

// A server (or a NAT) that closed a kept-alive connection: the request
// goes on a new one, and the caller sees only the answer.
func TestWireReplacesAConnectionClosedWhileIdle(t *testing.T) {
	closed := make(chan struct{}, 3)
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if _, ok := readRequest(br); ok {
			_, _ = io.WriteString(conn, okAnswer)
		}
		_ = conn.Close()
		closed <- struct{}{}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	for i := range 3 {
		if status, _, err := wirePost(c, 5*time.Second); err != nil || status != 200 {
			t.Fatalf("request %d: %d, %v", i, status, err)
		}
		<-closed // while idle
	}
	if n := srv.opened.Load(); n != 3 {
		t.Errorf("%d connections, want 3: each request after the first found its connection closed", n)
	}
}

// A fresh connection dropped before any answer is an error for the
// sender's retries, not retried here: the server may have taken the calls.
func TestWireDroppedAnswerOnAFreshConnectionIsAnError(t *testing.T) {
	srv := startRawServer(t, func(_ int64, _ net.Conn, br *bufio.Reader) { readRequest(br) })
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	if _, _, err := wirePost(c, 5*time.Second); err == nil {
		t.Fatal("a dropped answer was no error")
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry of a request sent on a fresh connection)", n)
	}
}

// Only a connection found closed with nothing answered is replaced: one that
// answered part of a head and closed fails the request.
func TestWireAnswerCutShortIsAnError(t *testing.T) {
	srv2 := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if readRequestOK(br) {
			_, _ = io.WriteString(conn, okAnswer)
		}
		if readRequestOK(br) {
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Le")
		}
	})
	c2 := newTestWireClient(t, srv2.url(), clockwork.NewRealClock())
	if _, _, err := wirePost(c2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := wirePost(c2, 5*time.Second); err == nil {
		t.Error("an answer cut short was no error")
	}
	if n := srv2.opened.Load(); n != 1 {
		t.Errorf("%d connections, want 1: a request answered in part is not sent again", n)
	}
}

func readRequestOK(br *bufio.Reader) bool { _, ok := readRequest(br); return ok }

func TestWireClosesWhatCannotBeReused(t *testing.T) {
	for name, answer := range map[string]string{
		"Connection: close":  "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.0":           "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"a body without end": "HTTP/1.1 500 Internal Server Error\r\n\r\n" + strings.Repeat("x", 3<<20),
		"bytes after it":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk",
	} {
		t.Run(name, func(t *testing.T) {
			srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
				for readRequestOK(br) {
					_, _ = io.WriteString(conn, answer)
				}
			})
			c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
			for range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := c.post(ctx, "Basic a2V5Og==", []byte(`{}`))
				if err != nil {
					cancel()
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)) // as post reads
				_ = res.Body.Close()
				cancel()
			}
			if n := srv.opened.Load(); n != 2 {
				t.Errorf("%d connections for 2 requests, want 2", n)
			}
		})
	}
}

func TestWireSkipsInterimAnswers(t *testing.T) {
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if readRequestOK(br) {
			_, _ = io.WriteString(conn, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+okAnswer)
		}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	if status, body, err := wirePost(c, 5*time.Second); err != nil || status != 200 || body != `{"success":true}` {
		t.Fatalf("got %d %q, %v", status, body, err)
	}
}

func TestWireBoundsTheAnswersHead(t *testing.T) {
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if !readRequestOK(br) {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("y", 1000) + "\r\n"
		for { // headers without end, until the client hangs up
			if _, err := io.WriteString(conn, line); err != nil {
				return
			}
		}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	_, _, err := wirePost(c, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "status line and headers are over 1048576 bytes") {
		t.Fatalf("headers without end gave %v", err)
	}
}

// A silent connection (established, nothing answered) ends at the request's
// deadline, and a cancelled request at once: neither waits on it for ever.
func TestWireSilentConnectionEndsAtTheDeadline(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	arrived := make(chan struct{}, 2)
	srv := startRawServer(t, func(_ int64, _ net.Conn, br *bufio.Reader) {
		readRequest(br)
		arrived <- struct{}{}
		<-hold
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	if _, _, err := wirePost(c, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a silent answer gave %v, want the deadline", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := c.post(ctx, "Basic a2V5Og==", []byte(`{}`))
		errc <- err
	}()
	<-arrived // the first request's
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled request gave %v", err)
	}
}

// An answer sent before the whole body was read (a 413 from a proxy that
// then closes) is the request's answer, not the failed write.
func TestWireEarlyAnswerIsRead(t *testing.T) {
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, br, 64<<10)
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.post(ctx, "Basic a2V5Og==", make([]byte, 32<<20))
	if err != nil {
		t.Fatalf("the early answer was lost: %v", err)
	}
	defer res.Body.Close()
	if body, _ := io.ReadAll(res.Body); res.StatusCode != 413 || string(body) != "too large" {
		t.Errorf("got %d %q", res.StatusCode, body)
	}
}

func TestWireForgetsConnectionsIdleTooLong(t *testing.T) {
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		for readRequestOK(br) {
			_, _ = io.WriteString(conn, okAnswer)
		}
	})
	clock := clockwork.NewFakeClock()
	c := newTestWireClient(t, srv.url(), clock)
	for _, wait := range []time.Duration{0, wireIdleTimeout - time.Second, wireIdleTimeout + time.Second} {
		clock.Advance(wait)
		if _, _, err := wirePost(c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one reused within %v, then a new one", n, wireIdleTimeout)
	}
}

func TestWireOverTLSSpeaksHTTP1(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := newTestWireClient(t, srv.URL+"/v1/batch", clockwork.NewRealClock())
	if _, _, err := wirePost(c, 5*time.Second); err == nil {
		t.Fatal("a certificate no root vouches for was taken")
	}
	c.tls.RootCAs = x509.NewCertPool()
	c.tls.RootCAs.AddCert(srv.Certificate())
	for range 2 {
		if status, proto, err := wirePost(c, 5*time.Second); err != nil || status != 200 || proto != "HTTP/1.1" {
			t.Fatalf("got %d %q, %v", status, proto, err)
		}
	}
}

// A 101 is an answer, as net/http's transport returns it (the output holds
// the calls as for any answer it has no use for), not an interim one after
// which another head comes: the request waited out its deadline for it.
// Its connection speaks another protocol after it, and is not kept.
func TestWireTakesA101ForTheAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := startRawServer(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if readRequestOK(br) {
			_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			<-hold
		}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	for range 2 {
		if status, _, err := wirePost(c, 5*time.Second); err != nil || status != http.StatusSwitchingProtocols {
			t.Fatalf("got %d, %v", status, err)
		}
	}
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("%d connections for 2 requests, want 2", n)
	}
}

// Hosts net/http writes otherwise than given (an IDN in punycode, an IPv6
// zone left out of Host) go by net/http's transport, as do proxied ones;
// loopback hosts, which Go never proxies, by the output's own client.
func TestWireOnlyForPlainHosts(t *testing.T) {
	for endpoint, wire := range map[string]bool{
		"http://127.0.0.1:8080": true, "https://[::1]:8443/proxy": true,
		"https://bücher.example": false, "http://[fe80::1%25eth0]:8080": false,
	} {
		conf, err := outputSpec().ParseYAML(fmt.Sprintf("{write_key: k, endpoint: %q}", endpoint), nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := outputFromParsed(conf, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		if (out.s.wire != nil) != wire {
			t.Errorf("%s: by the output's own client %v, want %v", endpoint, out.s.wire != nil, wire)
		}
	}
}
