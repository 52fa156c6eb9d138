// Package queues runs real queue servers on loopback for tests: Google's
// Pub/Sub test server (pstest, the gRPC API the gcppubsubv2 driver speaks),
// reached through PUBSUB_EMULATOR_HOST as the official emulator would be,
// a NATS server with JetStream (see nats.go), reached through
// NATS_SERVER_URL, and a RabbitMQ broker in processes of its own (see
// rabbit.go), reached through RABBIT_SERVER_URL.
package queues

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// PubSub is a running Pub/Sub test server.
type PubSub struct {
	Addr    string // host:port, the value of PUBSUB_EMULATOR_HOST
	Project string
	srv     *pstest.Server
	grpc    *grpc.Server // serves srv's API at Addr, counting streaming pulls
	pulls   pulls

	mu     sync.Mutex
	offset time.Duration  // how far Advance moved the server's clock
	names  int            // names handed out by Name
	calls  map[string]int // unary calls by method, failed ones too
	// answered are the unary calls by method that the server answered.
	answered map[string]int
	// refused are the subscriptions whose extensions fail
	// (RefuseExtensions), held those whose extensions wait for the
	// channel's close (HoldExtensions).
	refused map[string]bool
	held    map[string]chan struct{}
}

// StartPubSub starts a Pub/Sub test server, closed when the test ends.
func StartPubSub(t testing.TB) *PubSub {
	t.Helper()
	p := NewPubSub()
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// NewPubSub starts a Pub/Sub test server for a whole test binary (from
// TestMain): gocloud's gcppubsubv2 driver reads PUBSUB_EMULATOR_HOST once
// per process, so the tests of one package share one server.
func NewPubSub() *PubSub {
	p := &PubSub{Project: "currents-test", srv: pstest.NewServer(), calls: map[string]int{}, answered: map[string]int{}, refused: map[string]bool{},
		held: map[string]chan struct{}{}}
	p.pulls.open = map[string]int{}
	p.pulls.changed = make(chan struct{})
	p.pulls.gone = map[string]chan struct{}{}
	// pstest takes no gRPC options, so its API is served again here,
	// behind an interceptor that counts each subscription's open streams
	// (see WaitPullsClosed). pstest's own listener goes unused.
	p.grpc = grpc.NewServer(grpc.StreamInterceptor(p.pulls.intercept), grpc.UnaryInterceptor(p.countCall))
	pubsubpb.RegisterPublisherServer(p.grpc, &p.srv.GServer)
	pubsubpb.RegisterSubscriberServer(p.grpc, &p.srv.GServer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("queues: Pub/Sub test server: %v", err))
	}
	p.Addr = l.Addr().String()
	go func() { _ = p.grpc.Serve(l) }()
	return p
}

// Close stops the server.
func (p *PubSub) Close() error {
	p.grpc.Stop()
	return p.srv.Close()
}

// Env is the environment a process needs to use this server.
func (p *PubSub) Env() []string { return []string{"PUBSUB_EMULATOR_HOST=" + p.Addr} }

// TopicURL and SubscriptionURL are gocloud.dev/pubsub URLs (gcppubsubv2).
func (p *PubSub) TopicURL(topic string) string {
	return fmt.Sprintf("gcppubsubv2://%s/%s", p.Project, topic)
}

func (p *PubSub) SubscriptionURL(sub string) string {
	return fmt.Sprintf("gcppubsubv2://%s/%s", p.Project, sub)
}

// Name is a topic or subscription name of t's own on this server: t's name
// and a count. The server outlives the test, and a test run again in the
// same process (go test -count) would find the names of its earlier run.
func (p *PubSub) Name(t testing.TB) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names++
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), p.names)
}

// topicName is the server's full name of the topic.
func (p *PubSub) topicName(topic string) string {
	return fmt.Sprintf("projects/%s/topics/%s", p.Project, topic)
}

// subscriptionName is the server's full name of the subscription sub.
func (p *PubSub) subscriptionName(sub string) string {
	return fmt.Sprintf("projects/%s/subscriptions/%s", p.Project, sub)
}

// CreateTopic creates a topic and a subscription to it with ackDeadline
// (how long an unacknowledged message waits before redelivery).
func (p *PubSub) CreateTopic(t testing.TB, topic, sub string, ackDeadline time.Duration) {
	t.Helper()
	ctx := context.Background()
	name := p.topicName(topic)
	if _, err := p.srv.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil {
		t.Fatal(err)
	}
	if sub != "" {
		p.CreateSubscription(t, topic, sub, ackDeadline)
	}
}

// CreateSubscription creates the subscription sub of topic, which exists
// (again, after DeleteSubscription).
func (p *PubSub) CreateSubscription(t testing.TB, topic, sub string, ackDeadline time.Duration) {
	t.Helper()
	if _, err := p.srv.GServer.CreateSubscription(context.Background(), &pubsubpb.Subscription{
		Name:  p.subscriptionName(sub),
		Topic: p.topicName(topic), AckDeadlineSeconds: int32(ackDeadline / time.Second),
		RetryPolicy: &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
}

// DeleteSubscription deletes the subscription sub: the calls of its
// clients fail from then on, and its open streaming pulls end with
// NOT_FOUND (after pstest's delete, so that no pull opens in between).
func (p *PubSub) DeleteSubscription(t testing.TB, sub string) {
	t.Helper()
	if _, err := p.srv.GServer.DeleteSubscription(context.Background(), &pubsubpb.DeleteSubscriptionRequest{
		Subscription: p.subscriptionName(sub),
	}); err != nil {
		t.Fatal(err)
	}
	p.pulls.end(p.subscriptionName(sub))
}

// Calls is how many unary calls of method (such as "ModifyAckDeadline")
// the server answered so far, failed ones included, for every
// subscription: a test compares counts.
func (p *PubSub) Calls(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// RefuseExtensions makes the server refuse (Unavailable) every extension
// of the deadline of the subscription sub's messages from now on, as when
// the service is out of reach: the deadlines pass, and a test moving the
// clock sees their messages delivered again. Nacks still go through.
func (p *PubSub) RefuseExtensions(sub string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused[p.subscriptionName(sub)] = true
}

// HoldExtensions holds every extension of the deadline of the subscription
// sub's messages that reaches the server from now on (counted by Calls as
// it arrives) until release is called, as a slow network would. Nacks go
// through.
func (p *PubSub) HoldExtensions(sub string) (release func()) {
	gate := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[p.subscriptionName(sub)] = gate
	return sync.OnceFunc(func() { close(gate) })
}

// Answered is how many unary calls of method the server has answered,
// for every subscription: Calls counts them as they arrive, so the two
// differ by the calls under way.
func (p *PubSub) Answered(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered[method]
}

// countCall counts the unary calls, and refuses or holds the extensions
// RefuseExtensions or HoldExtensions names.
func (p *PubSub) countCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	defer func() {
		p.mu.Lock()
		p.answered[method]++
		p.mu.Unlock()
	}()
	p.mu.Lock()
	p.calls[method]++
	var refused bool
	var gate chan struct{}
	if mod, ok := req.(*pubsubpb.ModifyAckDeadlineRequest); ok && mod.AckDeadlineSeconds > 0 {
		refused, gate = p.refused[mod.Subscription], p.held[mod.Subscription]
	}
	p.mu.Unlock()
	if refused {
		return nil, status.Error(codes.Unavailable, "extensions refused by the test")
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return handler(ctx, req)
}

// Publish publishes one message with attributes to a topic.
func (p *PubSub) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	t.Helper()
	_ = p.srv.Publish(p.topicName(topic), data, attrs)
}

// Deliveries is how many times the server delivered the messages published
// to topic with body data: more than one means a redelivery.
func (p *PubSub) Deliveries(topic string, data []byte) int {
	name := p.topicName(topic)
	n := 0
	for _, m := range p.srv.Messages() {
		if m.Topic == name && bytes.Equal(m.Data, data) {
			n += m.Deliveries
		}
	}
	return n
}

// Advance moves the server's clock forward by d: the ack deadlines of the
// messages delivered and not acknowledged pass as they would in d, so a
// test sees the redelivery of what a killed process held without waiting
// out the client's 60 s stream ack deadline.
func (p *PubSub) Advance(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offset += d
	offset := p.offset
	p.srv.SetTimeNowFunc(func() time.Time { return time.Now().Add(offset) })
}

// Acked is how many of the messages published to topic the server holds as
// acknowledged.
func (p *PubSub) Acked(topic string) int {
	name := p.topicName(topic)
	n := 0
	for _, m := range p.srv.Messages() {
		if m.Topic == name && m.Acks > 0 {
			n++
		}
	}
	return n
}

// Leased is how many of the messages published to topic a client holds:
// it modified their deadline (the receipt of a message and the extensions
// that follow; a nack sets it to zero) and did not acknowledge them. The
// server delivers more than that to a stream: it ignores the flow control
// a streaming pull asks for, which the service honours.
func (p *PubSub) Leased(topic string) int {
	name := p.topicName(topic)
	n := 0
	for _, m := range p.srv.Messages() {
		if m.Topic == name && m.Acks == 0 && len(m.Modacks) > 0 && m.Modacks[len(m.Modacks)-1].AckDeadline > 0 {
			n++
		}
	}
	return n
}

// ExtendedSince tells whether a client extended the deadline of a message
// published to topic (a modack after the receipt's) since t. The client
// extends every message it holds at once, every few seconds: what it
// leased before t, Leased counts in full after such an extension.
func (p *PubSub) ExtendedSince(topic string, t time.Time) bool {
	name := p.topicName(topic)
	for _, m := range p.srv.Messages() {
		if m.Topic == name && len(m.Modacks) > 1 && m.Modacks[len(m.Modacks)-1].ReceivedAt.After(t) {
			return true
		}
	}
	return false
}

// Modacks are the deadline modifications a client sent for the messages
// published to topic with body data (a nack sets the deadline to zero), in
// the order the server received them.
func (p *PubSub) Modacks(topic string, data []byte) []pstest.Modack {
	name := p.topicName(topic)
	var mods []pstest.Modack
	for _, m := range p.srv.Messages() {
		if m.Topic == name && bytes.Equal(m.Data, data) {
			mods = append(mods, m.Modacks...)
		}
	}
	return mods
}

// Pull is what the server delivers now, without waiting, to another
// consumer of the subscription sub: the messages never delivered and those
// whose ack deadline passed. They are that consumer's until their deadline.
func (p *PubSub) Pull(t testing.TB, sub string) [][]byte {
	t.Helper()
	resp, err := p.srv.GServer.Pull(context.Background(), &pubsubpb.PullRequest{
		Subscription: p.subscriptionName(sub), ReturnImmediately: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for _, m := range resp.ReceivedMessages {
		bodies = append(bodies, m.Message.Data)
	}
	return bodies
}
