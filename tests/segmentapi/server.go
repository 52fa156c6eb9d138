// Package segmentapi is a loopback stand-in for Segment's HTTP Tracking API.
//
// It implements the documented contract (paths, basic auth or writeKey in
// the body, size and count limits, per-call validation, 200/400/401
// answers), records every call it accepts (or, WithRecordIDsOnly, only its
// messageId) with messageId dedup counters and the timestamp Segment would
// keep after its clock-skew correction, and injects faults on demand
// (scripted status codes, 429s, slow answers, dropped connections, a
// standing 503 outage, a seeded random storm of 503s, 429s and drops, a
// revoked write key answering 401, and a real listener outage via Down/Up).
// Tests talk to it with real HTTP on 127.0.0.1.
package segmentapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// Segment's documented limits, used unless overridden by options. Segment
// documents "500 KB" per request without saying which KB: analytics-go, its
// Go library, packs requests to 500,000 bytes, its Ruby and Java libraries to
// 512,000. The stand-in refuses above the stricter reading, so that a client
// passing its tests stays within either.
const (
	DefaultMaxCallBytes  = 32 << 10 // 32 KB of one call's JSON
	DefaultMaxBatchBytes = 500_000  // 500 KB of request body, read strictly (see below)
	DefaultMaxCalls      = 2500     // calls per batch; above this Segment drops silently
)

// Call is one call object as received (numbers are json.Number so they
// round-trip exactly). Callers must not modify recorded calls.
type Call map[string]any

// Option configures Start.
type Option func(*config)

type config struct {
	addr          string
	maxCallBytes  int
	maxBatchBytes int
	maxCalls      int
	latency       time.Duration
	control       bool
	idsOnly       bool
	otherKeys     []string
	tls           bool
	certPEM       []byte // WithTLSCert; nil: a new certificate
	keyPEM        []byte
	clock         clockwork.Clock // stamps receivedAt
}

func (c config) keepCalls() bool { return !c.idsOnly }

// WithMaxCallBytes overrides the 32 KB per-call limit.
func WithMaxCallBytes(n int) Option { return func(c *config) { c.maxCallBytes = n } }

// WithMaxBatchBytes overrides the 500 KB request body limit.
func WithMaxBatchBytes(n int) Option { return func(c *config) { c.maxBatchBytes = n } }

// WithMaxCalls overrides the 2,500 calls-per-batch limit.
func WithMaxCalls(n int) Option { return func(c *config) { c.maxCalls = n } }

// WithLatency delays every /v1/* request by d (before any fault applies), for
// realistic benchmarks.
func WithLatency(d time.Duration) Option { return func(c *config) { c.latency = d } }

// WithWriteKeys also accepts these write keys, each the key of a source of
// its own: AcceptedUnder tells which calls came under which key.
func WithWriteKeys(keys ...string) Option {
	return func(c *config) { c.otherKeys = append(c.otherKeys, keys...) }
}

// WithAddr sets the listen address (default 127.0.0.1:0).
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithControlAPI also serves the /_control/ API (see control.go) on the same
// port; the command uses it so out-of-process tests can drive the server.
func WithControlAPI() Option { return func(c *config) { c.control = true } }

// WithRecordIDsOnly keeps only the counters and messageIds of accepted
// calls, not the calls: for benchmarks, where a million kept calls would
// take gigabytes. Count, UniqueMessageIDs, Duplicates and Stats work as
// usual; Accepted panics and the control API's accepted list answers 409.
func WithRecordIDsOnly() Option { return func(c *config) { c.idsOnly = true } }

// Server is a running stand-in. All methods are safe for concurrent use.
type Server struct {
	writeKeys map[string]bool // the sources' keys: others are answered 200 and dropped, as Segment does
	cfg       config
	addr      string // host:port fixed by the first listen, reused by Up
	handler   http.Handler
	tlsConf   *tls.Config // WithTLS: the certificate the server presents
	certPEM   []byte

	lifeMu sync.Mutex // serialises Down/Up/Close
	hs     *http.Server
	done   chan struct{} // closed when hs.Serve returns
	closed bool

	mu      sync.Mutex // guards rec, queue, outage, storm, revoked, hook
	rec     records
	queue   []fault
	outage  bool
	storm   *storm // nil: no storm
	revoked bool   // every request answers 401
	hook    func(*http.Request, []Call)
}

// Start listens on 127.0.0.1:0 (or WithAddr) and serves until Close.
func Start(writeKey string, opts ...Option) (*Server, error) {
	cfg := config{
		addr:          "127.0.0.1:0",
		maxCallBytes:  DefaultMaxCallBytes,
		maxBatchBytes: DefaultMaxBatchBytes,
		maxCalls:      DefaultMaxCalls,
		clock:         clockwork.NewRealClock(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{writeKeys: map[string]bool{writeKey: true}, cfg: cfg}
	for _, k := range cfg.otherKeys {
		s.writeKeys[k] = true
	}
	s.rec.clear()
	if cfg.tls {
		var err error
		if s.tlsConf, s.certPEM, err = serverTLS(cfg); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/", s.serveSegment)
	if cfg.control {
		mux.Handle("/_control/", s.controlHandler())
	}
	s.handler = mux
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("segmentapi: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// StartT is Start for a test: it fails the test if the server cannot start
// and closes the server when the test ends.
func StartT(t testing.TB, writeKey string, opts ...Option) *Server {
	t.Helper()
	s, err := Start(writeKey, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// URL is the base URL, e.g. http://127.0.0.1:41234 (https:// WithTLS);
// stable across Down/Up.
func (s *Server) URL() string {
	if s.tlsConf != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Close stops serving for good; Up afterwards fails.
func (s *Server) Close() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.closed = true
	return s.downLocked()
}

// Down closes the listener and every open connection, so clients see
// connection refused until Up. In-flight handlers lose their connection.
func (s *Server) Down() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	return s.downLocked()
}

// Up listens again on the same port and serves. It is a no-op when up.
func (s *Server) Up() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return errors.New("segmentapi: server closed")
	}
	if s.hs != nil {
		return nil
	}
	// Go sets SO_REUSEADDR, so the port is free again despite TIME_WAIT.
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("segmentapi: listen again on %s: %w", s.addr, err)
	}
	s.serve(ln)
	return nil
}

func (s *Server) downLocked() error {
	if s.hs == nil {
		return nil
	}
	// http.Server.Close closes listeners and all tracked connections; a
	// closed http.Server cannot serve again, so Up builds a new one.
	err := s.hs.Close()
	<-s.done
	s.hs, s.done = nil, nil
	return err
}

func (s *Server) serve(ln net.Listener) {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         s.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: log.New(io.Discard, "", 0), // dropped connections are expected noise
	}
	done := make(chan struct{})
	s.hs, s.done = hs, done
	go func() {
		defer close(done)
		if s.tlsConf != nil {
			// ServeTLS offers HTTP/2 as well as HTTP/1.1.
			hs.TLSConfig = s.tlsConf.Clone()
			_ = hs.ServeTLS(trackingListener{ln}, "", "")
			return
		}
		_ = hs.Serve(trackingListener{ln})
	}()
}

// connKey carries the *trackedConn into request contexts.
type connKey struct{}

type connRole int

const (
	roleNone    connRole = iota
	roleSegment          // carried at least one /v1/* request
	roleControl          // carried only /_control/ requests so far
)

// trackedConn lets handlers tell which connection a request arrived on, so
// connections used only by the control API are not counted as opened.
type trackedConn struct {
	net.Conn
	gen  uint64 // Reset generation it was counted in; guarded by Server.mu
	role connRole
}

type trackingListener struct{ net.Listener }

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c}, nil
}

// connState counts every new TCP connection (StateNew), which is what shows
// whether the client under test reuses keep-alive connections.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if st != http.StateNew {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.stats.ConnectionsOpened++
	if tc := trackedOf(c); tc != nil {
		tc.gen = s.rec.gen
	}
}

// markConnLocked records the kind of traffic on r's connection and keeps
// ConnectionsOpened limited to connections that carried /v1/* traffic (or
// none at all). Callers hold s.mu.
func (s *Server) markConnLocked(r *http.Request, role connRole) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	tc := trackedOf(c)
	if tc == nil || tc.role == roleSegment || tc.role == role {
		return
	}
	counted := tc.gen == s.rec.gen // opened since the last Reset
	switch {
	case role == roleControl && counted:
		s.rec.stats.ConnectionsOpened--
	case role == roleSegment && tc.role == roleControl && counted:
		s.rec.stats.ConnectionsOpened++
	}
	tc.role = role
}
