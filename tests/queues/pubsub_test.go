package queues

import (
	"context"
	"testing"
	"time"

	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/gcppubsubv2"
)

// TestPubSubRedelivers: the server speaks the real API through gocloud's
// driver, and a message not acknowledged comes back: what the pipelines'
// at-least-once tests rely on.
func TestPubSubRedelivers(t *testing.T) {
	ps := StartPubSub(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	ps.CreateTopic(t, "t", "s", 10*time.Second)
	ctx := context.Background()
	topic, err := pubsub.OpenTopic(ctx, ps.TopicURL("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	if err := topic.Send(ctx, &pubsub.Message{Body: []byte("hello"), Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	sub, err := pubsub.OpenSubscription(ctx, ps.SubscriptionURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
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
	again.Ack()
}
