package e2e

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// silencingProxy forwards TCP connections to target; silence makes the
// connections open at that moment swallow everything from then on, both
// ways, without closing: a peer that vanished. Later connections forward.
type silencingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	live   []*atomic.Bool // per open connection: silenced
	count  int
	muted  int
	closed chan struct{}
	// after, when above 0, silences the first connection to carry more
	// than that many bytes from target (silenceAfter).
	after atomic.Int64
}

func startSilencingProxy(t *testing.T, target string) *silencingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silencingProxy{ln: ln, closed: make(chan struct{})}
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
func (p *silencingProxy) pipe(wg *sync.WaitGroup, src, dst net.Conn, muted *atomic.Bool, down bool) {
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

// silence silences every connection open now.
func (p *silencingProxy) silence() {
	p.mu.Lock()
	live := p.live
	p.mu.Unlock()
	for _, m := range live {
		p.mute(m)
	}
}

// silenceAfter silences the first connection that carries more than n
// bytes from the target from now on (a large object's body, mid-read).
func (p *silencingProxy) silenceAfter(n int64) { p.after.Store(n) }

func (p *silencingProxy) mute(m *atomic.Bool) {
	if !m.Swap(true) {
		p.mu.Lock()
		p.muted++
		p.mu.Unlock()
	}
}

func (p *silencingProxy) addr() string { return p.ln.Addr().String() }

func (p *silencingProxy) silenced() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.muted
}

func (p *silencingProxy) opened() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}
