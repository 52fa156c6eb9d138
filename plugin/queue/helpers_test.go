package queue

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/queues"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// waitLimit bounds every wait, so that a bug fails a test, not hangs it.
const waitLimit = 30 * time.Second

// pubsubServer is the package's Pub/Sub server: the driver connects to the
// PUBSUB_EMULATOR_HOST of its first use only.
var pubsubServer *queues.PubSub

func TestMain(m *testing.M) {
	pubsubServer = queues.NewPubSub()
	os.Setenv("PUBSUB_EMULATOR_HOST", pubsubServer.Addr)
	code := m.Run()
	_ = pubsubServer.Close()
	os.Exit(code)
}

// testPubSub is the shared server with names of the test's own: topics in
// and out, each with a subscription (in-sub, out-sub).
type testPubSub struct {
	*queues.PubSub
	prefix string
}

func startPubSub(t *testing.T) testPubSub {
	t.Helper()
	ps := testPubSub{pubsubServer, strings.ReplaceAll(t.Name(), "/", "-") + "-"}
	ps.CreateTopic(t, ps.prefix+"in", ps.prefix+"in-sub", 10*time.Second)
	ps.CreateTopic(t, ps.prefix+"out", ps.prefix+"out-sub", 10*time.Second)
	return ps
}

func (p testPubSub) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	p.PubSub.Publish(t, p.prefix+topic, data, attrs)
}
func (p testPubSub) TopicURL(topic string) string { return p.PubSub.TopicURL(p.prefix + topic) }
func (p testPubSub) SubscriptionURL(sub string) string {
	return p.PubSub.SubscriptionURL(p.prefix + sub)
}
func (p testPubSub) Deliveries(topic string, data []byte) int {
	return p.PubSub.Deliveries(p.prefix+topic, data)
}

// runStream builds a stream from yaml and runs it until the test ends,
// failing the test if it stops with an error before that.
func runStream(t *testing.T, b *service.StreamBuilder) {
	t.Helper()
	stream, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("stream: %v", err)
		}
	})
}

// receive reads n messages from the subscription, acknowledging each, and
// returns them by body; a body received twice fails the test.
func receive(t *testing.T, subURL string, n int) map[string]*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := pubsub.OpenSubscription(ctx, subURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(context.Background())
	got := map[string]*pubsub.Message{}
	for len(got) < n {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), n, err)
		}
		m.Ack()
		if _, dup := got[string(m.Body)]; dup {
			t.Fatalf("%q received twice", m.Body)
		}
		got[string(m.Body)] = m
	}
	return got
}

// buildInput and buildOutput construct a component from its YAML, as a
// stream would at start.
func buildInput(yaml string) (*queueInput, error) {
	conf, err := inputSpec().ParseYAML(yaml, nil)
	if err != nil {
		return nil, err
	}
	return inputFromParsed(conf, service.MockResources())
}

func buildOutput(yaml string) (*queueOutput, error) {
	conf, err := outputSpec().ParseYAML(yaml, nil)
	if err != nil {
		return nil, err
	}
	out, _, _, err := outputFromParsed(conf, service.MockResources())
	return out, err
}

func body(i int) string { return fmt.Sprintf("message-%03d", i) }
