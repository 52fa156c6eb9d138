package queues

import (
	"context"
	"testing"
	"time"

	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/awssnssqs"
)

// TestSQSThroughGocloud: the emulator takes gocloud's awssqs driver's
// calls at the URLs StartSQS gives (a queue named under SQS's own host):
// a message sent with attributes is received with them, comes back once
// nacked, and is gone once acknowledged. An SNS topic delivers to its
// queues, in SNS's envelope (which the driver opens) and raw.
func TestSQSThroughGocloud(t *testing.T) {
	s := StartSQS(t)
	s.SetEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := s.CreateQueue(t, "q", nil)
	s.Send(t, "q", []byte("hello"), map[string]string{"k": "v"})
	sub, err := pubsub.OpenSubscription(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	for i, settle := range []func(*pubsub.Message){(*pubsub.Message).Nack, (*pubsub.Message).Ack} {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != "hello" || m.Metadata["k"] != "v" {
			t.Fatalf("delivery %d: %q %v", i+1, m.Body, m.Metadata)
		}
		settle(m)
	}
	Eventually(t, ctx, "the acknowledged message deleted", func() bool {
		visible, inFlight := s.Count(t, "q")
		return visible == 0 && inFlight == 0
	})

	s.CreateQueue(t, "wrapped", nil)
	s.CreateQueue(t, "raw", nil)
	topic, err := pubsub.OpenTopic(ctx, s.CreateTopic(t, "t", false, "wrapped"))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	rawTopic, err := pubsub.OpenTopic(ctx, s.CreateTopic(t, "t-raw", true, "raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer rawTopic.Shutdown(ctx)
	for _, tp := range []*pubsub.Topic{topic, rawTopic} {
		if err := tp.Send(ctx, &pubsub.Message{Body: []byte("published"), Metadata: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"wrapped", "raw"} {
		sub, err := pubsub.OpenSubscription(ctx, s.QueueURL(name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != "published" || m.Metadata["k"] != "v" {
			t.Fatalf("%s: %q %v", name, m.Body, m.Metadata)
		}
		m.Ack()
		_ = sub.Shutdown(ctx)
	}
}
