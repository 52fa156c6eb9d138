package queues

import (
	"context"
	"sync"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/gcppubsubv2"
)

// sharedPubSub is the package's server: the gcppubsubv2 driver dials the
// PUBSUB_EMULATOR_HOST of its first use only, so a server of each test's
// own would be unreachable to the driver from the second test (or the
// second run of one, go test -count) on.
var sharedPubSub = sync.OnceValue(NewPubSub)

// TestPubSubRedelivers: the server speaks the real API through gocloud's
// driver, and a message not acknowledged comes back: what the pipelines'
// at-least-once tests rely on.
func TestPubSubRedelivers(t *testing.T) {
	ps := sharedPubSub()
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	ctx := context.Background()
	topic, err := pubsub.OpenTopic(ctx, ps.TopicURL(name))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	if err := topic.Send(ctx, &pubsub.Message{Body: []byte("hello"), Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	sub, err := pubsub.OpenSubscription(ctx, ps.SubscriptionURL(name))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	receiveNackReceive(t, ctx, sub).Ack()
}

// receiveNackReceive receives the message "hello" with the attribute k=v,
// nacks it, and returns it delivered again.
func receiveNackReceive(t *testing.T, ctx context.Context, sub *pubsub.Subscription) *pubsub.Message {
	t.Helper()
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "hello" || m.Metadata["k"] != "v" {
		t.Fatalf("got %q %v", m.Body, m.Metadata)
	}
	m.Nack()
	again, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Body) != "hello" {
		t.Fatalf("redelivered %q", again.Body)
	}
	return again
}

// TestPubSubCountsPulls: a receiving client's streaming pull is counted on
// its subscription until the client stopped, and WaitPullsClosed returns
// once it has.
func TestPubSubCountsPulls(t *testing.T) {
	ps := sharedPubSub()
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	ps.Publish(t, name, []byte("hello"), nil)
	ctx := context.Background()
	sub, err := pubsub.OpenSubscription(ctx, ps.SubscriptionURL(name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Ack()
	if n := ps.openPulls(name); n < 1 {
		t.Fatalf("%d streaming pulls counted on %s while a client receives from it", n, name)
	}
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ps.WaitPullsClosed(t, name)
	if n := ps.openPulls(name); n != 0 {
		t.Fatalf("%d streaming pulls counted after WaitPullsClosed", n)
	}
}

// TestPubSubDeleteEndsPulls: deleting a subscription ends the streaming
// pulls open on it with NOT_FOUND, as Pub/Sub does, and a receive fails.
// pstest alone left them open and silent, and a client that had started
// receiving before the delete never saw an error.
func TestPubSubDeleteEndsPulls(t *testing.T) {
	ps := sharedPubSub()
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := pubsub.OpenSubscription(ctx, ps.SubscriptionURL(name))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	received := make(chan error, 1)
	go func() {
		_, err := sub.Receive(ctx)
		received <- err
	}()
	ps.WaitPullOpen(t, name)
	ps.DeleteSubscription(t, name)
	if err := <-received; gcerrors.Code(err) != gcerrors.NotFound {
		t.Fatalf("receiving from the deleted subscription: %v, want NotFound", err)
	}
	ps.WaitPullsClosed(t, name)
}
