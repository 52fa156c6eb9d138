package queue

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redpanda-data/benthos/v4/public/service"
	"go.uber.org/goleak"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestNATSInputCloseNaksWhatItHolds: an input closed while it holds
// messages naks them, so that the consumer's other readers get them at once:
// one the pipeline still has (a stop that ran out of time), and one that
// gocloud fetched for a Read cancelled while it waited (gocloud's Shutdown
// drops what it fetched ahead). Before, both waited out the consumer's ack
// wait (an hour here, 30 s for a consumer the driver creates).
func TestNATSInputCloseNaksWhatItHolds(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "HELD", "held", "readers", time.Hour)
	const subURL = "nats://HELD?consumer=readers"
	wait := natsWait
	natsWait = waitLimit // the fetch of the cancelled Read waits for the publish
	t.Cleanup(func() { natsWait = wait })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	n.Publish(t, "held", []byte("in-pipeline"), nil)
	in := newInput(t, "url: "+subURL)
	if _, _, err := in.Read(ctx); err != nil { // never acknowledged
		t.Fatal(err)
	}
	readCtx, stopRead := context.WithCancel(ctx)
	read := make(chan error, 1)
	go func() {
		_, _, err := in.Read(readCtx)
		read <- err
	}()
	queues.Eventually(t, ctx, "the input's pull request waiting", func() bool {
		return n.ConsumerInfo(t, "HELD", "readers").NumWaiting > 0
	})
	stopRead()
	if err := <-read; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled Read: %v", err)
	}
	n.Publish(t, "held", []byte("fetched-ahead"), nil)
	queues.Eventually(t, ctx, "the second message delivered to the input", func() bool {
		return n.Deliveries(t, "HELD", "readers") == 2
	})
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}

	got := receive(t, subURL, 2) // another reader of the consumer
	if got["in-pipeline"] == nil || got["fetched-ahead"] == nil {
		t.Fatalf("received %v", got)
	}
}

// TestNATSInputReconnects: an input whose server restarts (same port, same
// store) reads on: the
// messages published after the restart arrive, each once.
func TestNATSInputReconnects(t *testing.T) {
	n := startNATS(t)
	seen := &tally{seen: map[string]int{}}
	stream := buildConsumer(t, n.SubscriptionURL("in-sub"), seen.consume)
	done := make(chan error, 1)
	go func() { done <- stream.Run(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	count := func() int { seen.mu.Lock(); defer seen.mu.Unlock(); return len(seen.seen) }
	const half = 10
	for i := range half {
		n.Publish(t, "in", []byte(body(i)), nil)
	}
	queues.Eventually(t, ctx, "the messages from before the restart, acknowledged", func() bool {
		return count() == half && n.ConsumerInfo(t, n.prefix+"in", n.prefix+"in-sub").NumAckPending == 0
	})
	n.Restart(t, queues.NATSOptions{})
	for i := half; i < 2*half; i++ {
		n.Publish(t, "in", []byte(body(i)), nil)
	}
	queues.Eventually(t, ctx, "the messages from after the restart", func() bool { return count() == 2*half })
	if err := stream.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	for b, c := range seen.seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", b, c)
		}
	}
}

// TestNATSMaxDeliverLogged: a consumer made elsewhere with MaxDeliver stops
// delivering a message rejected that often; the message stays in the stream
// and no one reads it. The input's last nak of it says so, naming the
// stream, the consumer and the message.
func TestNATSMaxDeliverLogged(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "ORDERS", "orders", "", 0)
	n.CreateConsumer(t, "ORDERS", jetstream.ConsumerConfig{Durable: "twice", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 2})
	n.Publish(t, "orders", []byte("refused"), nil)
	logged := &records{}
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(logged))
	if err := b.AddInputYAML("queue:\n  url: nats://ORDERS?consumer=twice"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumerFunc(func(context.Context, *service.Message) error { return errors.New("downstream refused") }); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	queues.Eventually(t, ctx, "the last nak logged", func() bool {
		return logged.has(slog.LevelError, "NATS stream ORDERS consumer twice: message 1 was delivered 2 times, the consumer's max_deliver")
	})
	if d := n.Deliveries(t, "ORDERS", "twice"); d != 2 {
		t.Fatalf("%d deliveries, want 2", d)
	}
}

// TestNATSInputSurvivesServerCrash: the NATS server is killed (SIGKILL)
// while a stream reads a consumer, and started again on the same store:
// every message arrives; those whose acks the crash lost come again.
func TestNATSInputSurvivesServerCrash(t *testing.T) {
	p := queues.StartNATSProcess(t)
	t.Setenv("NATS_SERVER_URL", p.URL())
	js := p.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in"}}); err != nil {
		t.Fatal(err)
	}
	// A short ack wait: what the crash left unacknowledged comes back soon.
	if _, err := js.CreateConsumer(ctx, "IN", jetstream.ConsumerConfig{
		Durable: "readers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	const n = 600
	for i := range n {
		if _, err := js.Publish(ctx, "in", []byte(body(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := &tally{seen: map[string]int{}}
	stream := buildConsumer(t, "nats://IN?consumer=readers", seen.consume)
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	count := func() int { seen.mu.Lock(); defer seen.mu.Unlock(); return len(seen.seen) }
	queues.Eventually(t, ctx, "a third of the messages read", func() bool { return count() >= n/3 })
	p.Crash(t)
	queues.Eventually(t, ctx, "every message read", func() bool { return count() == n })
	if err := stream.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	twice := 0
	for _, c := range seen.seen {
		if c > 1 {
			twice++
		}
	}
	t.Logf("%d messages read, %d of them more than once", n, twice)
}

// TestNATSNackBacksOff: a message the pipeline rejects comes back after 1 s,
// then 2 s, doubling up to a minute: redelivered at once, a message
// rejected every time came back some 4,600 times a second. (The delays are
// lower bounds, which a loaded machine only lengthens.)
func TestNATSNackBacksOff(t *testing.T) {
	n := startNATS(t)
	n.Publish(t, "in", []byte("refused twice"), nil)
	deliveries := make(chan time.Time, 3)
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML("queue:\n  url: " + n.SubscriptionURL("in-sub")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	if err := b.AddConsumerFunc(func(context.Context, *service.Message) error {
		deliveries <- time.Now()
		if calls.Add(1) < 3 {
			return errors.New("downstream refused")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	var at []time.Time
	for range 3 {
		select {
		case d := <-deliveries:
			at = append(at, d)
		case <-time.After(waitLimit):
			t.Fatalf("%d deliveries", len(at))
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second} {
		if gap := at[i+1].Sub(at[i]); gap < want {
			t.Errorf("delivery %d came %v after the rejection of delivery %d, want %v at least", i+2, gap, i+1, want)
		}
	}
}

// TestNATSNoGoroutineLeft: inputs and outputs opened, used and closed leave
// no goroutine behind, the clients' and the server's for their connections
// included.
func TestNATSNoGoroutineLeft(t *testing.T) {
	n := startNATS(t)
	for i := range 3 {
		n.Publish(t, "in", []byte(body(i)), nil)
	}
	// Pub/Sub tests before this one leave gocloud's and gRPC's receivers
	// winding down for a while after their subscriptions shut down, and
	// gocloud's Receive starts new goroutines for them meanwhile. None of
	// them is NATS's: a NATS subscription left behind would show our
	// driver's or nats.go's frames in a goroutine these do not ignore.
	before := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/transport.(*ClientStream).waitOnHeader"),
		goleak.IgnoreTopFunction("gocloud.dev/pubsub.(*Subscription).Receive.func2"),
		goleak.IgnoreAnyFunction("gocloud.dev/pubsub.(*Subscription).getNextBatch.func2")}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for range 3 {
		in, err := buildInput("url: " + n.SubscriptionURL("in-sub"))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		_, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := ack(ctx, errors.New("refused")); err != nil { // naked, comes back later
			t.Fatal(err)
		}
		if err := in.Close(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := buildOutput("url: " + n.TopicURL("out"))
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := out.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte("x"))}); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, before...)
}

// TestNATSInputKeepsHeldMessagesInProgress: a message the pipeline holds
// longer than the consumer's ack wait (Segment unreachable, a write key
// refused) is reported in progress, so the server does not deliver it again
// while it is held. Before, the next read got it a second time.
func TestNATSInputKeepsHeldMessagesInProgress(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	// Reports come every third of it: a tick may be 2 s late on a loaded
	// machine (a CI run beside other tests) before the server redelivers.
	const ackWait = 3 * time.Second
	n.CreateStream(t, "SLOW", "slow", "readers", ackWait)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var inProgress atomic.Int32
	sub, err := nc.Subscribe("$JS.ACK.>", func(m *nats.Msg) {
		if string(m.Data) == "+WPI" {
			inProgress.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	n.Publish(t, "slow", []byte("held"), nil)
	in := newInput(t, "url: nats://SLOW?consumer=readers")
	msg, _, err := in.Read(ctx) // held, never acknowledged
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := msg.AsBytes(); string(b) != "held" {
		t.Fatalf("read %q", b)
	}
	// Five reports, a second apart, span more than one ack wait after the
	// delivery.
	queues.Eventually(t, ctx, "five in-progress reports", func() bool { return inProgress.Load() >= 5 })
	n.Publish(t, "slow", []byte("next"), nil)
	msg, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := msg.AsBytes(); string(b) != "next" {
		t.Fatalf("the next read got %q, want the next message: the held one was delivered again", b)
	}
	if err := ack(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if d := n.Deliveries(t, "SLOW", "readers"); d != 2 {
		t.Fatalf("%d deliveries, want 2", d)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
