package queue

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestNATSTopicCreatesStream: a topic with stream=NAME creates the stream
// for its subject, a subscription creates its durable consumer on it, and
// the body and metadata go through.
func TestNATSTopicCreatesStream(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	topic, err := pubsub.OpenTopic(ctx, "nats://orders.created?stream=ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	if err := topic.Send(ctx, &pubsub.Message{Body: []byte("o1"), Metadata: map[string]string{"Order-Id": "1"}}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, "nats://ORDERS?consumer=billing", 1)
	if m := got["o1"]; m == nil || m.Metadata["Order-Id"] != "1" {
		t.Fatalf("received %v", got)
	}
	if d := n.Deliveries(t, "ORDERS", "billing"); d != 1 {
		t.Fatalf("%d deliveries, want 1", d)
	}
}

// TestNATSCompetingConsumers: two subscriptions of one durable consumer
// share its messages: each message reaches one of them, once (two
// consumers would each get all of them).
func TestNATSCompetingConsumers(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "JOBS", "jobs", "workers", 10*time.Second)
	const total = 40
	for i := range total {
		n.Publish(t, "jobs", []byte(body(i)), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		per  [2]int
		dups []string
		all  = make(chan struct{})
		wg   sync.WaitGroup
	)
	for i := range 2 {
		sub, err := pubsub.OpenSubscription(ctx, "nats://JOBS?consumer=workers")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Shutdown(context.Background())
		wg.Go(func() {
			for {
				m, err := sub.Receive(ctx)
				if err != nil {
					return // the test's end, or its deadline
				}
				m.Ack()
				mu.Lock()
				if _, dup := seen[string(m.Body)]; dup {
					dups = append(dups, string(m.Body))
				}
				seen[string(m.Body)] = i
				per[i]++
				if len(seen) == total {
					close(all)
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-all:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if len(seen) != total || len(dups) > 0 {
		t.Fatalf("%d of %d messages, received twice: %v", len(seen), total, dups)
	}
	t.Logf("messages per subscription %v", per)
}

// TestNATSErrors: errors name the subject or stream, never the
// credentials of NATS_SERVER_URL.
func TestNATSErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing serves once closed
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("NATS_SERVER_URL", "nats://user:hunter2@"+addr)
	ctx := context.Background()
	_, err = pubsub.OpenTopic(ctx, "nats://orders.created")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user") || !strings.Contains(err.Error(), "orders.created") {
		t.Fatalf("unreachable server: %v", err)
	}
	t.Log(err)

	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	for _, c := range []struct{ url, want string }{
		{"nats://NOPE?consumer=c", "NOPE"},
		{"nats://S", "consumer="},
		{"nats://S?consumer=c&bogus=1", "bogus"},
	} {
		_, err := pubsub.OpenSubscription(ctx, c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q named", c.url, err, c.want)
		}
	}
	// No stream captures the subject: the send fails, naming it.
	topic, err := pubsub.OpenTopic(ctx, "nats://nowhere")
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Shutdown(ctx)
	sendCtx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if err := topic.Send(sendCtx, &pubsub.Message{Body: []byte("x")}); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("send without a stream: %v", err)
	}
}
