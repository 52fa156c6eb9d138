// Package silentfront is a TCP front before a test server whose
// connections can go silent: a peer that vanished, or a NAT or load
// balancer that forgot the connection, or a hung proxy that still
// acknowledges. Tests use it to show that a client gives up on such a
// connection and carries on over a new one.
package silentfront

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Front forwards TCP connections to target; Silence makes the
// connections open at that moment swallow everything from then on, both
// ways, without closing: a peer that vanished. Later connections forward.
type Front struct {
	ln     net.Listener
	mu     sync.Mutex
	live   []*atomic.Bool // per open connection: silenced
	count  int
	muted  int
	closed chan struct{}
	// after, when above 0, silences the first connection to carry more
	// than that many bytes from target (SilenceAfter).
	after atomic.Int64
}

// Start starts a front before target (host:port), closed when the test
// ends.
func Start(t testing.TB, target string) *Front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Front{ln: ln, closed: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		close(p.closed)
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			muted := new(atomic.Bool)
			p.mu.Lock()
			p.live, p.count = append(p.live, muted), p.count+1
			p.mu.Unlock()
			conns.Add(2)
			go p.pipe(&conns, c, up, muted, false)
			go p.pipe(&conns, up, c, muted, true)
		}
	}()
	return p
}

// pipe copies src to dst until either ends or the proxy closes; once muted,
// what it reads goes nowhere. down: src is the target.
func (p *Front) pipe(wg *sync.WaitGroup, src, dst net.Conn, muted *atomic.Bool, down bool) {
	defer wg.Done()
	go func() {
		<-p.closed
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	var carried int64
	for {
		n, err := src.Read(buf)
		carried += int64(n)
		if after := p.after.Load(); down && after > 0 && carried > after && p.after.CompareAndSwap(after, 0) {
			p.mute(muted)
		}
		if n > 0 && !muted.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !muted.Load() {
				_ = dst.Close()
			}
			return
		}
	}
}

// Silence silences every connection open now.
func (p *Front) Silence() {
	p.mu.Lock()
	live := p.live
	p.mu.Unlock()
	for _, m := range live {
		p.mute(m)
	}
}

// SilenceAfter silences the first connection that carries more than n
// bytes from the target from now on (a large object's body, mid-read).
func (p *Front) SilenceAfter(n int64) { p.after.Store(n) }

func (p *Front) mute(m *atomic.Bool) {
	if !m.Swap(true) {
		p.mu.Lock()
		p.muted++
		p.mu.Unlock()
	}
}

// Addr is the front's host:port.
func (p *Front) Addr() string { return p.ln.Addr().String() }

// Silenced is how many connections went silent.
func (p *Front) Silenced() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.muted
}

// Opened is how many connections the front took.
func (p *Front) Opened() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}
