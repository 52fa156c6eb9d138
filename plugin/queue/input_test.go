package queue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestQueueToQueue: every message published to a subscription arrives once
// at another topic through the input and the output, with its attributes
// (metadata both ways), with either Pub/Sub driver and with NATS.
func TestQueueToQueue(t *testing.T) {
	t.Run("gcppubsubv2", func(t *testing.T) { testQueueToQueue(t, startPubSub(t)) })
	t.Run("gcppubsub", func(t *testing.T) {
		ps := startPubSub(t)
		ps.scheme = "gcppubsub"
		testQueueToQueue(t, ps)
	})
	t.Run("nats", func(t *testing.T) { testQueueToQueue(t, startNATS(t)) })
}

func testQueueToQueue(t *testing.T, ps queueServer) {
	const n = 50
	for i := range n {
		ps.Publish(t, "in", []byte(body(i)), map[string]string{"seq": body(i), "source": "braze"})
	}
	b := service.NewStreamBuilder()
	if err := b.SetYAML(`
input:
  queue:
    url: ` + ps.SubscriptionURL("in-sub") + `
    max_in_flight: 8
output:
  queue:
    url: ` + ps.TopicURL("out") + `
    metadata:
      include_prefixes: [ seq, source ]
logger:
  level: none
`); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	got := receive(t, ps.SubscriptionURL("out-sub"), n)
	for i := range n {
		m := got[body(i)]
		if m == nil {
			t.Fatalf("%s missing", body(i))
		}
		if m.Metadata["seq"] != body(i) || m.Metadata["source"] != "braze" {
			t.Errorf("%s: attributes %v", body(i), m.Metadata)
		}
	}
}

// TestInputNackRedelivers: a message the pipeline rejects goes back to the
// queue (the server delivers it again), and is acknowledged once delivered.
func TestInputNackRedelivers(t *testing.T) { forEachServer(t, testInputNackRedelivers) }

func testInputNackRedelivers(t *testing.T, ps queueServer) {
	ps.Publish(t, "in", []byte("flaky"), nil)
	// Input and consumer only: with an output besides the consumer, the
	// stream's broker would retry the consumer itself.
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML("queue:\n  url: " + ps.SubscriptionURL("in-sub")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	delivered := make(chan struct{})
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		if calls.Add(1) == 1 {
			return errors.New("downstream refused")
		}
		close(delivered)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	select {
	case <-delivered:
	case <-time.After(waitLimit):
		t.Fatal("the nacked message never came back")
	}
	// The second attempt came from the server, not a retry in the process.
	if d := ps.Deliveries(t, "in", []byte("flaky")); d != 2 {
		t.Fatalf("the server delivered the message %d times, want 2", d)
	}
}

// TestInputMaxInFlight: with max_in_flight messages unacknowledged, Read
// waits even though the queue has more; an acknowledgement frees a slot.
func TestInputMaxInFlight(t *testing.T) { forEachServer(t, testInputMaxInFlight) }

func testInputMaxInFlight(t *testing.T, ps queueServer) {
	for i := range 5 {
		ps.Publish(t, "in", []byte(body(i)), nil)
	}
	in := newInput(t, `
url: `+ps.SubscriptionURL("in-sub")+`
max_in_flight: 2
`)
	ctx := context.Background()
	var acks []service.AckFunc
	for range 2 {
		_, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := in.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third Read with two in flight: %v, want it to wait", err)
	}
	if err := acks[0](ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Read(ctx); err != nil {
		t.Fatalf("Read after an ack: %v", err)
	}
}

// newInput is a connected input from its config, closed when the test ends.
func newInput(t *testing.T, yaml string) *queueInput {
	t.Helper()
	in, err := buildInput(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return in
}
