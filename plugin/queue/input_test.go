package queue

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rawpubsub "cloud.google.com/go/pubsub/v2"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestQueueToQueue: every message published to a subscription arrives once
// at another topic through the input and the output, with its attributes
// (metadata both ways), with either Pub/Sub driver, NATS and RabbitMQ.
func TestQueueToQueue(t *testing.T) {
	t.Run("gcppubsubv2", func(t *testing.T) { testQueueToQueue(t, startPubSub(t)) })
	t.Run("gcppubsub", func(t *testing.T) {
		ps := startPubSub(t)
		ps.scheme = "gcppubsub"
		testQueueToQueue(t, ps)
	})
	t.Run("nats", func(t *testing.T) { testQueueToQueue(t, startNATS(t)) })
	t.Run("rabbit", func(t *testing.T) { testQueueToQueue(t, startRabbit(t)) })
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
	delivered := make(chan *service.Message, 1)
	deliveries := make(chan int, 1)
	if err := b.AddConsumerFunc(func(_ context.Context, m *service.Message) error {
		if calls.Add(1) == 1 {
			return errors.New("downstream refused")
		}
		// Counted while the message is held: SQS forgets a deleted one.
		if c, ok := ps.(deliveryCounter); ok {
			deliveries <- c.Deliveries(t, "in", []byte("flaky"))
		}
		delivered <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	var again *service.Message
	select {
	case again = <-delivered:
	case <-time.After(waitLimit):
		t.Fatal("the nacked message never came back")
	}
	// The second attempt came from the server, not a retry in the process.
	if _, ok := ps.(deliveryCounter); ok {
		if d := <-deliveries; d != 2 {
			t.Fatalf("the server delivered the message %d times, want 2", d)
		}
		return
	}
	// RabbitMQ counts no deliveries; its quorum queue says it redelivered.
	if n, _ := again.MetaGet("x-delivery-count"); n != "1" {
		t.Fatalf("the message came back with x-delivery-count %q, want the broker's redelivery 1", n)
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

// TestInputMaxInFlightBoundsTheLeases: with max_in_flight messages out and
// reading waiting, the queue has delivered no more than those to this input.
// Messages a driver leases beyond them sit in memory, whatever their size,
// and are held from the other consumers of the subscription. NATS: the
// server's count of deliveries. Pub/Sub: the test server ignores the flow
// control a streaming pull asks for (the service honours it), so what shows
// is the bound the client asks for, which its own flow control applies too.
func TestInputMaxInFlightBoundsTheLeases(t *testing.T) {
	forEachServer(t, testInputMaxInFlightBoundsTheLeases)
}

func testInputMaxInFlightBoundsTheLeases(t *testing.T, ps queueServer) {
	const published, maxInFlight = 50, 2
	for i := range published {
		ps.Publish(t, "in", []byte(body(i)), nil)
	}
	in := newInput(t, `
url: `+ps.SubscriptionURL("in-sub")+`
max_in_flight: 2
`)
	ctx := context.Background()
	for range maxInFlight {
		if _, _, err := in.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := in.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third Read with two in flight: %v, want it to wait", err)
	}
	switch s := ps.(type) {
	case testNATS:
		// Nothing was acknowledged: every message delivered is leased.
		if leased := s.Deliveries(t, "in", nil); leased > maxInFlight {
			t.Fatalf("the queue delivered %d messages to the input, with max_in_flight %d", leased, maxInFlight)
		}
	case testRabbit:
		// Nothing was acknowledged: every message not ready is leased.
		if leased := published - s.State(t, s.prefix+"in-sub").Ready; leased > maxInFlight {
			t.Fatalf("the broker delivered %d messages to the input, with max_in_flight %d", leased, maxInFlight)
		}
	case testSQS:
		// gocloud's driver fetches ahead, up to 10 a ReceiveMessage: SQS
		// cannot be told how many a consumer may hold (docs/queues.md).
		_, inFlight := s.Count(t, "in")
		if inFlight > 10 {
			t.Fatalf("the queue delivered %d messages to the input, with max_in_flight %d", inFlight, maxInFlight)
		}
	case testServiceBus:
		// gocloud's driver receives ahead, up to 50 a ReceiveMessages, each
		// locked: Service Bus cannot be told how many a consumer may hold.
		if leased := s.Deliveries(t, "in", nil); leased > 50 {
			t.Fatalf("the subscription delivered %d messages to the input, with max_in_flight %d", leased, maxInFlight)
		}
	default:
		var rs *rawpubsub.Subscriber
		if !in.sub.As(&rs) {
			t.Fatal("not a Pub/Sub client subscription")
		}
		if got := rs.ReceiveSettings.MaxOutstandingMessages; got != maxInFlight {
			t.Fatalf("the client asks for up to %d messages outstanding, with max_in_flight %d", got, maxInFlight)
		}
	}
}

// TestInputShutdownAcks: once a stream stopped, the process may exit; what
// its pipeline delivered is then acknowledged on the server, or comes back
// after the restart: never lost. gcppubsub: every acknowledgement reached
// the server when the stop returns (gocloud's ack batcher sends them, and
// Shutdown flushes it). gcppubsubv2: the client sends them from its own
// receive loop, which the driver's Close cancels without waiting for it, so
// some may still be unsent; their messages come back (duplicates).
func TestInputShutdownAcks(t *testing.T) {
	for scheme, flushed := range map[string]bool{"gcppubsub": true, "gcppubsubv2": false} {
		t.Run(scheme, func(t *testing.T) {
			ps := startPubSub(t)
			ps.scheme = scheme
			const n = 40
			for i := range n {
				ps.Publish(t, "in", []byte(body(i)), nil)
			}
			seen := &tally{seen: map[string]int{}}
			stopHolding(t, ps.SubscriptionURL("in-sub"), seen, n)
			acked := ps.Acked(ps.prefix + "in")
			if flushed {
				if acked != n {
					t.Fatalf("the stream stopped with %d of its %d delivered messages acknowledged to the server", acked, n)
				}
				return
			}
			t.Logf("the stream stopped with %d of its %d delivered messages acknowledged to the server", acked, n)

			// The restart: the server's clock passes the ack deadlines, so
			// what is still unacknowledged comes back to the new stream.
			// The stopped client's stream must be closed on the server
			// first (the driver's Close does not wait for it): the server
			// hands expired messages to any stream still open, and one it
			// gave the dead stream came back only after the client's 60 s
			// stream ack deadline, in real time (1 run in 40).
			ps.WaitPullsClosed(t, ps.prefix+"in-sub")
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			restarted := buildConsumer(t, ps.SubscriptionURL("in-sub"), seen.consume)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- restarted.Run(runCtx) }()
			ps.Advance(2 * time.Minute)
			poll := time.NewTicker(10 * time.Millisecond)
			defer poll.Stop()
			for ps.Acked(ps.prefix+"in") < n {
				select {
				case <-poll.C:
				case <-ctx.Done():
					t.Fatalf("%d of %d messages acknowledged after the restart", ps.Acked(ps.prefix+"in"), n)
				}
			}
			stop()
			<-done
			seen.mu.Lock()
			defer seen.mu.Unlock()
			twice := 0
			for i := range n {
				switch seen.seen[body(i)] {
				case 0:
					t.Errorf("%s acknowledged and never delivered", body(i))
				case 1:
				default:
					twice++
				}
			}
			t.Logf("%d of %d messages delivered again after the restart", twice, n)
		})
	}
}

// tally counts a stream's deliveries by body.
type tally struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *tally) consume(_ context.Context, m *service.Message) error {
	b, _ := m.AsBytes()
	c.mu.Lock()
	c.seen[string(b)]++
	c.mu.Unlock()
	return nil
}

// stopHolding runs a stream from the subscription into c, stops it while
// it holds its delivery number held (whose acknowledgement is then one the
// stop must flush), and returns once the stream stopped.
func stopHolding(t *testing.T, subURL string, c *tally, held int) {
	t.Helper()
	var delivered atomic.Int32
	holding, release := make(chan struct{}), make(chan struct{})
	stream := buildConsumer(t, subURL, func(ctx context.Context, m *service.Message) error {
		_ = c.consume(ctx, m)
		if delivered.Add(1) == int32(held) {
			close(holding)
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- stream.Run(context.Background()) }()
	select {
	case <-holding:
	case <-time.After(waitLimit):
		t.Fatalf("%d of %d messages delivered", delivered.Load(), held)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- stream.Stop(ctx) }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	<-done
}

// buildConsumer is a stream from the subscription to consume.
func buildConsumer(t *testing.T, subURL string, consume func(context.Context, *service.Message) error) *service.Stream {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML("queue:\n  url: " + subURL); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumerFunc(consume); err != nil {
		t.Fatal(err)
	}
	stream, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return stream
}
