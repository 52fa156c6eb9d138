package queue

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/internal/subscription"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestRabbitInputOutlivesConsumerTimeout: the pipeline holds two messages
// past the broker's consumer_timeout, as the segment output does while
// Segment is unreachable. The broker closes the input's channel and puts
// back what it held; the input reads on, on a new channel, and gets them
// again (duplicates), then a message published since. The pipeline
// delivers the held copies at last, and the process stops before it
// delivered the rest. Every message not delivered must still be in the
// queue: before, gocloud's driver sent the held copies' acks on the new
// channel, where their delivery tags named other messages, and the one
// published since was acknowledged, never delivered: lost. And one warning
// names the queue and the consumer_timeout: before, nothing was logged.
// Both queue types: a classic queue, and a quorum queue.
func TestRabbitInputOutlivesConsumerTimeout(t *testing.T) {
	r := shortTimeoutRabbit.Get(t)
	t.Setenv(subscription.RabbitServerEnv, r.URL())
	for _, queueType := range []string{queues.Classic, queues.Quorum} {
		t.Run(queueType, func(t *testing.T) { testOutlivesConsumerTimeout(t, r, "held-"+queueType, queueType) })
	}
}

func testOutlivesConsumerTimeout(t *testing.T, r *queues.Rabbit, queue, queueType string) {
	r.Declare(t, queue, queue, queueType)
	for _, b := range []string{"a", "b", "d"} {
		r.Publish(t, queue, []byte(b), nil)
	}
	logged := &records{}
	conf, err := inputSpec().ParseYAML("url: rabbit://"+queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inputFromParsed(conf, service.MockResources(service.MockResourcesOptUseLogger(service.NewLoggerFromSlog(slog.New(logged)))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(want string) service.AckFunc {
		t.Helper()
		for {
			m, ack, err := in.Read(ctx)
			if errors.Is(err, service.ErrNotConnected) {
				if err := in.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("reading %q: %v", want, err)
			}
			if b, _ := m.AsBytes(); string(b) != want {
				t.Fatalf("read %q, want %q", b, want)
			}
			return ack
		}
	}
	settle := func(ack service.AckFunc, err error) {
		t.Helper()
		if err := ack(ctx, err); err != nil {
			t.Fatal(err)
		}
	}
	settle(read("a"), nil)
	heldB, heldD := read("b"), read("d")
	// The broker puts them back once its consumer_timeout passed; the
	// input reads them again on a new channel.
	read("b")
	read("d")
	r.Publish(t, queue, []byte("c"), nil)
	read("c")          // held until the stop
	settle(heldB, nil) // the pipeline delivered them at last
	settle(heldD, nil)
	if err := in.Close(ctx); err != nil { // the process stops
		t.Fatal(err)
	}
	// b and d again (their acks found their channel closed), and c.
	if left := drain(t, r, queue); !slices.Equal(slices.Sorted(slices.Values(left)), []string{"b", "c", "d"}) {
		t.Errorf("the queue holds %q once the input stopped, want b, c and d", left)
	}
	if w := timeoutWarnings(logged, queue); w != 1 {
		t.Errorf("%d warnings name rabbit://%s and its consumer_timeout, want 1", w, queue)
	}
}

// drain takes every message ready in queue, acknowledging it, and returns
// their bodies.
func drain(t *testing.T, r *queues.Rabbit, queue string) []string {
	t.Helper()
	conn, err := amqp.Dial(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return bodies
		}
		bodies = append(bodies, string(d.Body))
	}
}

// TestRabbitStreamOutlivesConsumerTimeout: a stream's output holds its
// first message past the broker's consumer_timeout (the consumer blocks
// until the test releases it, as the segment output blocks while Segment
// is unreachable), then delivers it. The stream reads on: every message is
// delivered, those the channel held twice, and at the end the queue is
// empty. One warning says why (before, nothing was logged).
func TestRabbitStreamOutlivesConsumerTimeout(t *testing.T) {
	r := shortTimeoutRabbit.Get(t)
	t.Setenv(subscription.RabbitServerEnv, r.URL())
	r.Declare(t, "held", "held", queues.Classic)
	const n = 10
	for i := range n {
		r.Publish(t, "held", []byte(body(i)), nil)
	}
	seen := &tally{seen: map[string]int{}}
	release := make(chan struct{})
	var first sync.Once
	logged := &records{}
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(logged))
	if err := b.AddInputYAML("queue:\n  url: rabbit://held"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConsumerFunc(func(ctx context.Context, m *service.Message) error {
		first.Do(func() { <-release })
		return seen.consume(ctx, m)
	}); err != nil {
		t.Fatal(err)
	}
	mark := r.LogMark() // the broker is the package's: other tests' timeouts are in its log
	runStream(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	queues.Eventually(t, ctx, "the broker's consumer_timeout", func() bool {
		return strings.Contains(r.LogsSince(mark), "delivery acknowledgement on channel")
	})
	close(release)
	count := func() int { seen.mu.Lock(); defer seen.mu.Unlock(); return len(seen.seen) }
	queues.Eventually(t, ctx, "every message delivered", func() bool { return count() == n })
	queues.Eventually(t, ctx, "the queue empty", func() bool { return r.State(t, "held") == queues.QueueState{Consumers: 1} })
	seen.mu.Lock()
	t.Logf("%d messages, delivered %v times", n, seen.seen)
	seen.mu.Unlock()
	// One warning, however many messages the channel held.
	if w := timeoutWarnings(logged, "held"); w != 1 {
		t.Errorf("%d warnings name rabbit://held and its consumer_timeout, want 1", w)
	}
}

// timeoutWarnings counts the warnings that name queue and the
// consumer_timeout.
func timeoutWarnings(logged *records, queue string) int {
	n := 0
	for _, rec := range logged.all() {
		if rec.Level == slog.LevelWarn && contains(rec.Message, "rabbit://"+queue+":", "consumer_timeout") {
			n++
		}
	}
	return n
}
