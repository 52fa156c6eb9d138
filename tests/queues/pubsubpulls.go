package queues

import (
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const streamingPull = "/google.pubsub.v1.Subscriber/StreamingPull"

// pulls counts the streaming pulls open on each subscription. The server
// delivers a subscription's messages to any stream it holds open, a killed
// client's too until the server has seen its connection close: a test that
// moves the clock to have a killed client's messages delivered again waits
// for that first (WaitPullsClosed), or they go to the dead stream. It also
// ends the pulls of a deleted subscription with NOT_FOUND, as Pub/Sub does:
// pstest leaves them open and silent.
type pulls struct {
	mu      sync.Mutex
	open    map[string]int // by subscription name
	changed chan struct{}  // closed and replaced on every change of open
	// gone is closed when its subscription is deleted (end): the pulls
	// open on it then end.
	gone map[string]chan struct{}
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

// add counts n more pulls open on sub, and returns the channel closed
// once sub is deleted.
func (ps *pulls) add(sub string, n int) <-chan struct{} {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.open[sub] += n
	close(ps.changed)
	ps.changed = make(chan struct{})
	if ps.gone[sub] == nil {
		ps.gone[sub] = make(chan struct{})
	}
	return ps.gone[sub]
}

// end ends the pulls open on sub, which pstest deleted. A pull opened
// later gets a fresh channel: pstest refuses it until sub is created again.
func (ps *pulls) end(sub string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.gone[sub] != nil {
		close(ps.gone[sub])
		delete(ps.gone, sub)
	}
}

// pullStream is a streaming pull that reports the subscription of its first
// request. pstest reads the first request before it starts the stream's
// goroutines, so sub is set before any other read of it. pstest's reads of
// later requests fail with NOT_FOUND once the subscription is deleted,
// which ends the stream with that status.
type pullStream struct {
	grpc.ServerStream
	pulls *pulls
	sub   string
	gone  <-chan struct{}
	reqs  chan pulled // the requests after the first, once read
}

type pulled struct {
	req *pubsubpb.StreamingPullRequest
	err error
}

func (s *pullStream) RecvMsg(m any) error {
	if s.sub == "" {
		err := s.ServerStream.RecvMsg(m)
		if req, ok := m.(*pubsubpb.StreamingPullRequest); ok && err == nil && req.Subscription != "" {
			s.sub = req.Subscription
			s.gone = s.pulls.add(s.sub, 1)
		}
		return err
	}
	if s.reqs == nil {
		s.reqs = make(chan pulled)
		go s.read()
	}
	select {
	case r := <-s.reqs:
		if r.err == nil {
			proto.Merge(m.(proto.Message), r.req)
		}
		return r.err
	case <-s.gone:
		return status.Errorf(codes.NotFound, "Resource not found (resource=%s).", s.sub)
	}
}

// read reads the stream's requests for RecvMsg until the stream ends: the
// stream's read cannot be interrupted when the subscription is deleted.
func (s *pullStream) read() {
	for {
		req := new(pubsubpb.StreamingPullRequest)
		err := s.ServerStream.RecvMsg(req)
		select {
		case s.reqs <- pulled{req, err}:
		case <-s.gone:
			return
		}
		if err != nil {
			return
		}
	}
}

// WaitPullsClosed waits until the server has no streaming pull open on the
// subscription sub, as after every client of it was stopped or killed.
func (p *PubSub) WaitPullsClosed(t testing.TB, sub string) {
	t.Helper()
	p.waitPulls(t, sub, "still open", func(open int) bool { return open == 0 })
}

// WaitPullOpen waits until the server holds a streaming pull open on the
// subscription sub, as once a client started receiving from it.
func (p *PubSub) WaitPullOpen(t testing.TB, sub string) {
	t.Helper()
	p.waitPulls(t, sub, "open", func(open int) bool { return open > 0 })
}

// waitPulls waits up to 30 s until the count of streaming pulls open on sub
// is one done accepts.
func (p *PubSub) waitPulls(t testing.TB, sub, what string, done func(open int) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.pulls.mu.Lock()
		changed := p.pulls.changed
		p.pulls.mu.Unlock()
		open := p.openPulls(sub)
		if done(open) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d streaming pulls %s on %s after 30s", open, what, sub)
		}
	}
}

// openPulls is how many streaming pulls are open on the subscription sub.
func (p *PubSub) openPulls(sub string) int {
	p.pulls.mu.Lock()
	defer p.pulls.mu.Unlock()
	return p.pulls.open[p.subscriptionName(sub)]
}
