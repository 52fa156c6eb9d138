package segment

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// Anything a server sends on an idle connection (a 408 before it closes
// it, an answer to nothing) is no answer to the next request: that
// connection is closed, and the request goes on another, as net/http's.
// Taken for the answer, an unasked 200 accepted calls never sent.
func TestWireTakesNothingSentWhileIdle(t *testing.T) {
	for name, unasked := range map[string]string{
		"a 408 before closing": "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"an answer to nothing": "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"unasked\":true}",
	} {
		t.Run(name, func(t *testing.T) { testWireTakesNothingSentWhileIdle(t, name, unasked, nil) })
		t.Run(name+" over TLS", func(t *testing.T) { testWireTakesNothingSentWhileIdle(t, name, unasked, newTLSCert(t)) })
	}
}

func testWireTakesNothingSentWhileIdle(t *testing.T, name, unasked string, tlsSrv *httptest.Server) {
	var requests atomic.Int64
	answered, sent := make(chan struct{}), make(chan struct{})
	_, c := startWireServer(t, tlsSrv, func(n int64, conn net.Conn, br *bufio.Reader) {
		for readRequestOK(br) {
			requests.Add(1)
			_, _ = io.WriteString(conn, okAnswer)
			if n == 1 && requests.Load() == 1 {
				<-answered // the answer read, the connection idle
				_, _ = io.WriteString(conn, unasked)
				if name == "a 408 before closing" {
					_ = conn.Close()
				}
				close(sent)
			}
		}
	})
	if status, _, err := wirePost(c, 5*time.Second); err != nil || status != 200 {
		t.Fatalf("first request: %d, %v", status, err)
	}
	close(answered)
	<-sent
	status, body, err := wirePost(c, 5*time.Second)
	if err != nil || status != 200 || body != `{"success":true}` {
		t.Errorf("the request after it got %d %q, %v", status, body, err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the server read %d requests, want 2", n)
	}
}

// A request the server read on a kept-alive connection, which it then
// closed without answering, is not sent again at once: the server may
// have taken its calls (net/http does not send a POST twice either). It
// fails, and the sender's retries decide.
func TestWireSendsARequestOnce(t *testing.T) {
	var requests atomic.Int64
	srv := startRawServer(t, func(n int64, conn net.Conn, br *bufio.Reader) {
		for readRequestOK(br) {
			if requests.Add(1) == 2 {
				return // read, then closed unanswered
			}
			_, _ = io.WriteString(conn, okAnswer)
		}
	})
	c := newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	if _, _, err := wirePost(c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := wirePost(c, 5*time.Second); err == nil {
		t.Error("a request closed unanswered was no error")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the server read %d requests, want 2: the second was sent again", n)
	}
}

// startWireServer is startRawServer over TLS when tlsSrv is given (its
// certificate, for 127.0.0.1), and a client for it.
func startWireServer(t *testing.T, tlsSrv *httptest.Server, serve func(n int64, conn net.Conn, br *bufio.Reader)) (*rawServer, *wireClient) {
	t.Helper()
	srv := startRawServer(t, func(n int64, conn net.Conn, br *bufio.Reader) {
		if tlsSrv != nil {
			conn = tls.Server(conn, tlsSrv.TLS)
			br = bufio.NewReader(conn)
		}
		serve(n, conn, br)
	})
	if tlsSrv == nil {
		return srv, newTestWireClient(t, srv.url(), clockwork.NewRealClock())
	}
	c := newTestWireClient(t, "https"+strings.TrimPrefix(srv.url(), "http"), clockwork.NewRealClock())
	c.tls.RootCAs = x509.NewCertPool()
	c.tls.RootCAs.AddCert(tlsSrv.Certificate())
	return srv, c
}

// newTLSCert is httptest's certificate, for 127.0.0.1.
func newTLSCert(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	srv.Close()
	return srv
}

// A connection is kept for the next request past the last one's deadline
// (request_timeout, idle longer than it): that deadline no longer counts.
func TestWireReusesAConnectionPastTheLastDeadline(t *testing.T) {
	for name, tlsSrv := range map[string]*httptest.Server{"plain": nil, "TLS": newTLSCert(t)} {
		t.Run(name, func(t *testing.T) {
			srv, c := startWireServer(t, tlsSrv, func(_ int64, conn net.Conn, br *bufio.Reader) {
				for readRequestOK(br) {
					_, _ = io.WriteString(conn, okAnswer)
				}
			})
			for range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				res, err := c.post(ctx, "Basic a2V5Og==", []byte(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				<-ctx.Done() // the connection idle past its request's deadline
				cancel()
			}
			if n := srv.opened.Load(); n != 1 {
				t.Errorf("%d connections for 2 requests, want 1", n)
			}
		})
	}
}
