package queue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/queues"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// waitLimit bounds every wait, so that a bug fails a test, not hangs it.
// It only bounds failures: on a loaded machine JetStream's publish acks
// time out (5 s), and each message nacked for it waits out the consumer's
// 10 s ack wait before it is delivered again, so 30 s was not enough.
const waitLimit = 2 * time.Minute

// pubsubServer is the package's Pub/Sub server: the driver connects to the
// PUBSUB_EMULATOR_HOST of its first use only.
var pubsubServer *queues.PubSub

var (
	// rabbitServer is the broker of RABBIT_SERVER_URL: gocloud's driver
	// keeps one connection per process, dialled from it.
	rabbitServer = &queues.SharedRabbit{}
	// shortTimeoutRabbit is the broker of the consumer_timeout tests.
	shortTimeoutRabbit = &queues.SharedRabbit{Config: queues.ShortConsumerTimeout}
)

func TestMain(m *testing.M) {
	queues.ServeNATSChild() // the NATS server process of TestNATSOutputSurvivesServerCrash
	pubsubServer = queues.NewPubSub()
	os.Setenv("PUBSUB_EMULATOR_HOST", pubsubServer.Addr)
	code := m.Run()
	_ = pubsubServer.Close()
	rabbitServer.Close()
	shortTimeoutRabbit.Close()
	serviceBus.Close()
	os.Exit(code)
}

// sharedRabbit is the package's broker of RABBIT_SERVER_URL.
func sharedRabbit(t *testing.T) *queues.Rabbit {
	t.Helper()
	r := rabbitServer.Get(t)
	os.Setenv("RABBIT_SERVER_URL", r.URL())
	return r
}

// queueServer is a queue server with topics of the test's own, in and
// out, each read through a subscription (in-sub, out-sub).
type queueServer interface {
	Publish(t testing.TB, topic string, data []byte, attrs map[string]string)
	TopicURL(topic string) string
	SubscriptionURL(sub string) string
	// badMessage is a message the server refuses, alone in its batch.
	badMessage() *service.Message
}

// deliveryCounter is a server that counts deliveries: Deliveries is how
// many times the server delivered the messages published to topic with
// body data; more than one means a redelivery.
type deliveryCounter interface {
	Deliveries(t testing.TB, topic string, data []byte) int
}

// servers are the queue servers the tests run against, each speaking its
// real protocol: Google's Pub/Sub test server, NATS JetStream, RabbitMQ, an
// SQS emulator and a Service Bus fake.
var servers = []struct {
	name  string
	start func(t *testing.T) queueServer
}{
	{"pubsub", func(t *testing.T) queueServer { return startPubSub(t) }},
	{"nats", func(t *testing.T) queueServer { return startNATS(t) }},
	{"rabbit", func(t *testing.T) queueServer { return startRabbit(t) }},
	{"sqs", func(t *testing.T) queueServer { return startSQS(t) }},
	{"servicebus", func(t *testing.T) queueServer { return startServiceBus(t) }},
}

// forEachServer runs test as a subtest against each server.
func forEachServer(t *testing.T, test func(t *testing.T, s queueServer)) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { test(t, srv.start(t)) })
	}
}

// testPubSub is the shared server with names of the test's own: topics in
// and out, each with a subscription (in-sub, out-sub), through the driver
// of scheme.
type testPubSub struct {
	*queues.PubSub
	prefix, scheme string
}

func startPubSub(t *testing.T) testPubSub {
	t.Helper()
	ps := testPubSub{pubsubServer, pubsubServer.Name(t) + "-", "gcppubsubv2"}
	ps.CreateTopic(t, ps.prefix+"in", ps.prefix+"in-sub", 10*time.Second)
	ps.CreateTopic(t, ps.prefix+"out", ps.prefix+"out-sub", 10*time.Second)
	return ps
}

func (p testPubSub) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	p.PubSub.Publish(t, p.prefix+topic, data, attrs)
}
func (p testPubSub) TopicURL(topic string) string {
	return p.scheme + strings.TrimPrefix(p.PubSub.TopicURL(p.prefix+topic), "gcppubsubv2")
}
func (p testPubSub) SubscriptionURL(sub string) string {
	return p.scheme + strings.TrimPrefix(p.PubSub.SubscriptionURL(p.prefix+sub), "gcppubsubv2")
}
func (p testPubSub) Deliveries(_ testing.TB, topic string, data []byte) int {
	return p.PubSub.Deliveries(p.prefix+topic, data)
}

// badMessage has an attribute that is not UTF-8: Pub/Sub refuses it.
func (p testPubSub) badMessage() *service.Message {
	m := service.NewMessage([]byte("bad"))
	m.MetaSetMut("attr", "\xff not UTF-8")
	return m
}

// testNATS is a NATS server of the test's own, the one NATS_SERVER_URL
// names while the test runs, with streams in and out capturing the
// subjects of the same names, each with a durable consumer (in-sub,
// out-sub). The names start with the test's, so that a stream of an
// earlier test still shutting down does not find them.
type testNATS struct {
	*queues.NATS
	prefix string
}

func startNATS(t *testing.T) testNATS {
	t.Helper()
	n := testNATS{queues.StartNATS(t), strings.ReplaceAll(t.Name(), "/", "-") + "-"}
	t.Setenv("NATS_SERVER_URL", n.URL())
	for _, name := range []string{"in", "out"} {
		n.CreateStream(t, n.prefix+name, n.prefix+name, n.prefix+name+"-sub", 10*time.Second)
	}
	return n
}

func (n testNATS) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	n.NATS.Publish(t, n.prefix+topic, data, attrs)
}
func (n testNATS) TopicURL(topic string) string { return n.NATS.TopicURL(n.prefix + topic) }
func (n testNATS) SubscriptionURL(sub string) string {
	return n.NATS.SubscriptionURL(n.prefix+strings.TrimSuffix(sub, "-sub"), n.prefix+sub)
}

// Deliveries counts the deliveries of the topic's consumer: the tests that
// ask publish a single message.
func (n testNATS) Deliveries(t testing.TB, topic string, _ []byte) int {
	return n.NATS.Deliveries(t, n.prefix+topic, n.prefix+topic+"-sub")
}

// badMessage is bigger than the server's maximum payload (1 MiB).
func (n testNATS) badMessage() *service.Message {
	return service.NewMessage(make([]byte, 2<<20))
}

// testRabbit is the package's broker with exchanges in and out of the
// test's own, each bound to a durable quorum queue (in-sub, out-sub).
type testRabbit struct {
	*queues.Rabbit
	prefix string
}

var rabbitRuns atomic.Int32

func startRabbit(t *testing.T) testRabbit {
	t.Helper()
	// Names of the run's own: the broker outlives a test run (-count).
	r := testRabbit{sharedRabbit(t), fmt.Sprintf("%s-%d-", strings.ReplaceAll(t.Name(), "/", "-"), rabbitRuns.Add(1))}
	for _, name := range []string{"in", "out"} {
		r.Declare(t, r.prefix+name, r.prefix+name+"-sub", queues.Quorum)
	}
	return r
}

func (r testRabbit) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	r.Rabbit.Publish(t, r.prefix+topic, data, attrs)
}
func (r testRabbit) TopicURL(topic string) string { return r.Rabbit.TopicURL(r.prefix + topic) }
func (r testRabbit) SubscriptionURL(sub string) string {
	return r.Rabbit.SubscriptionURL(r.prefix + sub)
}

// badMessage is bigger than the broker's maximum message size (1 MiB).
func (r testRabbit) badMessage() *service.Message {
	return service.NewMessage(make([]byte, 2<<20))
}

// testSQS is an SQS emulator of the test's own with queues in and out; a
// topic and its subscription are the same queue (the awssqs driver sends
// to a queue and receives from it).
type testSQS struct{ *queues.SQS }

func startSQS(t *testing.T) testSQS {
	t.Helper()
	s := testSQS{queues.StartSQS(t)}
	s.SetEnv(t)
	for _, name := range []string{"in", "out"} {
		s.CreateQueue(t, name, nil)
	}
	return s
}

func (s testSQS) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	s.Send(t, topic, data, attrs)
}
func (s testSQS) TopicURL(topic string) string { return s.QueueURL(topic) }
func (s testSQS) SubscriptionURL(sub string) string {
	return s.QueueURL(strings.TrimSuffix(sub, "-sub"))
}

// badMessage is bigger than a queue's maximum message size (1 MiB).
func (s testSQS) badMessage() *service.Message {
	return service.NewMessage(make([]byte, 2<<20))
}

// serviceBus is the package's Service Bus fake: gocloud's azuresb opener
// reads SERVICEBUS_CONNECTION_STRING once a process, so the tests share it.
var serviceBus = &queues.SharedServiceBus{}

// testServiceBus is the Service Bus fake with topics of the test's own, in
// and out, each with a subscription (in-sub, out-sub).
type testServiceBus struct {
	*queues.ServiceBus
	prefix string
	// senders publish, one a topic: a sender a message took 0.27 s each.
	senders map[string]*azservicebus.Sender
	client  *azservicebus.Client
}

func startServiceBus(t *testing.T) testServiceBus {
	t.Helper()
	sb := serviceBus.Get(t)
	sb.SetEnv(t)
	s := testServiceBus{sb, sb.Name(t) + "-", map[string]*azservicebus.Sender{}, sb.Client(t)}
	for _, name := range []string{"in", "out"} {
		sb.CreateSubscription(t, s.prefix+name, name+"-sub", 10*time.Second, 0)
	}
	return s
}

// Publish sends with the SDK, attributes as application properties.
func (s testServiceBus) Publish(t testing.TB, topic string, data []byte, attrs map[string]string) {
	t.Helper()
	sender := s.senders[topic]
	if sender == nil {
		var err error
		if sender, err = s.client.NewSender(s.prefix+topic, nil); err != nil {
			t.Fatal(err)
		}
		s.senders[topic] = sender
	}
	m := &azservicebus.Message{Body: data, ApplicationProperties: map[string]any{}}
	for k, v := range attrs {
		m.ApplicationProperties[k] = v
	}
	if err := sender.SendMessage(context.Background(), m, nil); err != nil {
		t.Fatal(err)
	}
}
func (s testServiceBus) TopicURL(topic string) string { return s.ServiceBus.TopicURL(s.prefix + topic) }
func (s testServiceBus) SubscriptionURL(sub string) string {
	return s.ServiceBus.SubscriptionURL(s.prefix+strings.TrimSuffix(sub, "-sub"), sub)
}

// Deliveries counts the deliveries of the message of topic with body data
// (of every message, data nil): the fake counts those that ended unsettled,
// and one more for a message locked now.
func (s testServiceBus) Deliveries(t testing.TB, topic string, data []byte) int {
	n := 0
	for _, m := range s.Messages(t, s.prefix+topic, topic+"-sub") {
		if data != nil && m.Body != string(data) {
			continue
		}
		n += m.DeliveryCount
		if m.State == queues.SBLocked {
			n++
		}
	}
	return n
}

// badMessage is bigger than a Standard namespace's messages (256 KB).
func (s testServiceBus) badMessage() *service.Message {
	return service.NewMessage(make([]byte, 300<<10))
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
		// Run returns when ctx ends without stopping the stream, whose
		// input would go on receiving: stop it first.
		if err := stream.StopWithin(10 * time.Second); err != nil {
			t.Errorf("stopping the stream: %v", err)
		}
		<-done
		cancel()
	})
}

// receive reads n messages from the subscription, acknowledging each, and
// returns them by body; a body received twice fails the test.
func receive(t *testing.T, subURL string, n int) map[string]*pubsub.Message {
	t.Helper()
	got := map[string]*pubsub.Message{}
	readSub(t, subURL, func(m *pubsub.Message) bool {
		if _, dup := got[string(m.Body)]; dup {
			t.Fatalf("%q received twice", m.Body)
		}
		got[string(m.Body)] = m
		return len(got) < n
	}, func(err error) string { return fmt.Sprintf("after %d of %d messages: %v", len(got), n, err) })
	return got
}

// readSub reads the subscription, acknowledging each message, and hands
// each to take until take returns false. A read failing first fails the
// test, saying failed(err).
func readSub(t *testing.T, subURL string, take func(*pubsub.Message) bool, failed func(error) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := pubsub.OpenSubscription(ctx, subURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(context.Background())
	for more := true; more; {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(failed(err))
		}
		m.Ack()
		more = take(m)
	}
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

// newOutput is a connected output from its config, closed when the test
// ends.
func newOutput(t *testing.T, yaml string) *queueOutput {
	t.Helper()
	out, err := buildOutput(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close(context.Background()) })
	return out
}

func body(i int) string { return fmt.Sprintf("message-%03d", i) }

// records is a slog handler that keeps the records' messages.
type records struct {
	mu   sync.Mutex
	msgs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec)
	return nil
}

// has is whether a record of level says every one of parts.
func (r *records) has(level slog.Level, parts ...string) bool {
	for _, rec := range r.all() {
		if rec.Level == level && contains(rec.Message, parts...) {
			return true
		}
	}
	return false
}

// all is the records so far.
func (r *records) all() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// contains is whether s contains every one of parts.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
