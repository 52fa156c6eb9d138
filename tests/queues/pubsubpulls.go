package queues

import (
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
)

const streamingPull = "/google.pubsub.v1.Subscriber/StreamingPull"

// pulls counts the streaming pulls open on each subscription. The server
// delivers a subscription's messages to any stream it holds open, a killed
// client's too until the server has seen its connection close: a test that
// moves the clock to have a killed client's messages delivered again waits
// for that first (WaitPullsClosed), or they go to the dead stream.
type pulls struct {
	mu      sync.Mutex
	open    map[string]int // by subscription name
	changed chan struct{}  // closed and replaced on every change of open
}

// intercept counts a streaming pull from its first request, which names the
// subscription, until pstest's handler returned, which it does after it
// stopped delivering to the stream.
func (ps *pulls) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != streamingPull {
		return handler(srv, ss)
	}
	s := &pullStream{ServerStream: ss, pulls: ps}
	err := handler(srv, s)
	if s.sub != "" {
		ps.add(s.sub, -1)
	}
	return err
}

func (ps *pulls) add(sub string, n int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.open[sub] += n
	close(ps.changed)
	ps.changed = make(chan struct{})
}

// pullStream is a streaming pull that reports the subscription of its first
// request. pstest reads the first request before it starts the stream's
// goroutines, so sub is set before any other read of it.
type pullStream struct {
	grpc.ServerStream
	pulls *pulls
	sub   string
}

func (s *pullStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if req, ok := m.(*pubsubpb.StreamingPullRequest); ok && err == nil && s.sub == "" && req.Subscription != "" {
		s.sub = req.Subscription
		s.pulls.add(s.sub, 1)
	}
	return err
}

// WaitPullsClosed waits until the server has no streaming pull open on the
// subscription sub, as after every client of it was stopped or killed.
func (p *PubSub) WaitPullsClosed(t testing.TB, sub string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.pulls.mu.Lock()
		changed := p.pulls.changed
		p.pulls.mu.Unlock()
		open := p.openPulls(sub)
		if open == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d streaming pulls still open on %s after 30s", open, sub)
		}
	}
}

// openPulls is how many streaming pulls are open on the subscription sub.
func (p *PubSub) openPulls(sub string) int {
	p.pulls.mu.Lock()
	defer p.pulls.mu.Unlock()
	return p.pulls.open[p.subscriptionName(sub)]
}
