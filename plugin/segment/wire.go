package segment

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// wireClient sends the output's requests over HTTP/1.1 itself: a request is
// written and its answer read on the goroutine that sends it, over kept-alive
// connections to the one endpoint. net/http's transport hands each request
// to a connection's own read and write goroutines and back (over HTTPS, to
// HTTP/2's framing and its read loop): a fifth of the output's CPU over
// plain HTTP, a tenth over HTTPS (BenchmarkOutputCPU, …OverTLS). It is
// used unless a proxy is set for the endpoint (HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY), where net/http's transport, which speaks to proxies, is kept.
type wireClient struct {
	addr       string      // host:port to dial
	host       string      // the Host header
	requestURI string      // /v1/batch after the endpoint's path, and its query
	tls        *tls.Config // nil for http://
	dialer     net.Dialer

	clock clockwork.Clock // how long a connection was idle

	mu     sync.Mutex
	idle   []*wireConn // oldest first
	closed bool
}

const (
	// wireIdleTimeout is how long an idle connection is kept: less than
	// servers and load balancers commonly keep one (60 s and more), so
	// that the next request seldom finds it closed by the other end.
	wireIdleTimeout = 30 * time.Second
	// maxAnswerHead bounds an answer's status line and headers: something
	// in front of Segment sending headers without end stops at it.
	maxAnswerHead = 1 << 20
)

// newWireClient is a client for u, the endpoint's /v1/batch, that keeps
// up to maxIdle idle connections.
func newWireClient(u *url.URL, maxIdle int, clock clockwork.Clock) (*wireClient, error) {
	port := u.Port()
	c := &wireClient{host: u.Host, requestURI: u.RequestURI(), idle: make([]*wireConn, 0, maxIdle), clock: clock}
	c.dialer = net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second} // as net/http's
	switch u.Scheme {
	case "http":
		port = cmp.Or(port, "80")
	case "https":
		port = cmp.Or(port, "443")
		// The system's roots (SSL_CERT_FILE, SSL_CERT_DIR), TLS 1.2 at least, as net/http.
		c.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"},
			ClientSessionCache: tls.NewLRUClientSessionCache(maxIdle)}
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	return c, nil
}

// wireConn is one connection and what has been read from it.
type wireConn struct {
	net.Conn
	br        *bufio.Reader
	budget    int64 // bytes that may still be read: bounds an answer's head
	idleSince time.Time
}

func (w *wireConn) Read(p []byte) (int, error) {
	if w.budget <= 0 {
		return 0, fmt.Errorf("the answer's status line and headers are over %d bytes", maxAnswerHead)
	}
	if int64(len(p)) > w.budget {
		p = p[:w.budget]
	}
	n, err := w.Conn.Read(p)
	w.budget -= int64(n)
	return n, err
}

// post sends one request with these Authorization and body, and returns its
// answer, whose body must be closed. A request is sent once: one that
// failed after it went may have been taken (the server read it, then
// closed), and the sender's retries decide, as net/http does for a POST.
func (c *wireClient) post(ctx context.Context, authorization string, body []byte) (*http.Response, error) {
	head := c.head(authorization, len(body))
	pc, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.exchange(ctx, pc, head, body)
}

// head is a request's line and headers.
func (c *wireClient) head(authorization string, length int) []byte {
	h := make([]byte, 0, 160+len(c.requestURI)+len(c.host)+len(authorization))
	h = append(h, "POST "...)
	h = append(h, c.requestURI...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, c.host...)
	h = append(h, "\r\nUser-Agent: "+userAgent+"\r\nContent-Type: application/json\r\nAuthorization: "...)
	h = append(h, authorization...)
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(length), 10)
	return append(h, "\r\n\r\n"...)
}

// exchange writes a request on pc and reads its answer's head. pc is closed
// on error, else by the answer's body.
func (c *wireClient) exchange(ctx context.Context, pc *wireConn, head, body []byte) (*http.Response, error) {
	deadline, _ := ctx.Deadline()
	_ = pc.SetDeadline(deadline)
	// Cancelled (the output closing), the connection's reads and writes end at once.
	stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = pc.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline is the request's, and may pass
			// just before the context's own timer.
			return nil, cmp.Or(ctx.Err(), context.DeadlineExceeded)
		}
		return nil, cmp.Or(ctx.Err(), err)
	}
	bufs := net.Buffers{head, body}
	_, werr := bufs.WriteTo(pc.Conn)
	// An answer may have come before the whole body went (a 413 from a
	// proxy that then closed): it is read even after a failed write.
	pc.budget = maxAnswerHead
	res, err := http.ReadResponse(pc.br, nil)
	// Interim answers (100, 103) have no body; a 101 is the answer, as
	// net/http's, after which the connection speaks another protocol.
	for err == nil && res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != http.StatusSwitchingProtocols {
		res, err = http.ReadResponse(pc.br, nil)
	}
	if err != nil {
		if werr != nil {
			err = werr
		}
		return fail(err)
	}
	pc.budget = math.MaxInt64
	keep := werr == nil && !res.Close && res.StatusCode != http.StatusSwitchingProtocols
	res.Body = &wireBody{ReadCloser: res.Body, c: c, pc: pc, stop: stop, keep: keep}
	return res, nil
}

// wireBody is an answer's body: closed, its connection goes back to the
// pool if the answer was read to its end and nothing asked to close it.
type wireBody struct {
	io.ReadCloser
	c    *wireClient
	pc   *wireConn
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *wireBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *wireBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop is false once the connection's deadline was cut short.
	if b.stop() && b.keep && b.eof && b.pc.br.Buffered() == 0 {
		b.c.put(b.pc)
		return nil
	}
	return b.pc.Close()
}

// get takes the most recently used idle connection on which nothing came
// while it was idle, or dials one.
func (c *wireClient) get(ctx context.Context) (*wireConn, error) {
	for {
		var pc *wireConn
		now := c.clock.Now()
		c.mu.Lock()
		c.expireLocked(now)
		if n := len(c.idle); n > 0 {
			pc = c.idle[n-1]
			c.idle[n-1] = nil
			c.idle = c.idle[:n-1]
		}
		c.mu.Unlock()
		if pc == nil {
			return c.dial(ctx)
		}
		if pc.quiet() {
			return pc, nil
		}
		_ = pc.Close()
	}
}

// quiet says whether nothing came on an idle connection, neither a byte
// nor its end. A server that closed it while idle, or sent something
// unasked (a 408 before closing), left that to read, and the next request
// took it for its answer: an unasked 200 accepted calls never sent.
// net/http's transport reads its idle connections to see this.
func (pc *wireConn) quiet() bool {
	conn := pc.Conn
	if tc, ok := conn.(*tls.Conn); ok {
		// A record read along with the answer's last waits in the TLS layer.
		_ = tc.SetReadDeadline(time.Unix(1, 0))
		var b [1]byte
		if n, err := tc.Read(b[:]); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		conn = tc.NetConn()
	}
	// A deadline passed (the last request's, or the one above) would end
	// the look before it began.
	_ = conn.SetReadDeadline(time.Time{})
	return socketQuiet(conn)
}

func (c *wireClient) dial(ctx context.Context) (*wireConn, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	pc := &wireConn{Conn: conn}
	pc.br = bufio.NewReader(pc)
	return pc, nil
}

// put keeps pc for the next request, up to the pool's size.
func (c *wireClient) put(pc *wireConn) {
	pc.idleSince = c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(pc.idleSince)
	if c.closed || len(c.idle) == cap(c.idle) {
		_ = pc.Close()
		return
	}
	c.idle = append(c.idle, pc)
}

// expireLocked closes the connections idle for too long (the oldest first).
func (c *wireClient) expireLocked(now time.Time) {
	n := 0
	for n < len(c.idle) && now.Sub(c.idle[n].idleSince) > wireIdleTimeout {
		_ = c.idle[n].Close()
		n++
	}
	c.idle = slices.Delete(c.idle, 0, n)
}

// close closes the idle connections; those in use close when their request ends.
func (c *wireClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, pc := range c.idle {
		_ = pc.Close()
	}
	c.idle = c.idle[:0]
}
