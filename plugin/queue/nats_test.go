package queue

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redpanda-data/benthos/v4/public/service"
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

// TestNATSServerListCredentialsHidden: NATS_SERVER_URL may take any form
// nats.Connect takes: several servers, comma-separated (a cluster), or a
// server without a scheme. The credentials stay out of the errors.
func TestNATSServerListCredentialsHidden(t *testing.T) {
	var addrs []string
	for range 2 { // ports nothing serves once closed
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	for server, want := range map[string]string{
		"nats://user:hunter2@" + addrs[0] + ", nats://user:hunter2@" + addrs[1]: "nats://" + addrs[0] + ",nats://" + addrs[1],
		"user:hunter2@" + addrs[0]:                                   "nats://" + addrs[0],
		"tls://hunter2@127.0.0.1":                                    "tls://127.0.0.1:4222",
		"nats://" + addrs[0] + ",nats://user:hunter2@127.0.0.1:port": "NATS_SERVER_URL: server 2 of 2 is not a URL",
	} {
		t.Setenv("NATS_SERVER_URL", server)
		_, err := pubsub.OpenTopic(context.Background(), "nats://orders.created")
		if err == nil {
			t.Fatal("opened a topic on servers that are not there")
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows NATS_SERVER_URL's password: %v", err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to name %s", want, err, want)
		}
	}
}

// TestNATSOutputReconnects: once the output's NATS connection is closed for
// good (nats.go gives up reconnecting after its 60 attempts, two minutes of
// outage, or after the same authorisation error twice), the output opens a
// new one when the server is back: sends do not fail for ever. Here the
// server comes back refusing the password first, which closes the
// connection at once, then with it again.
func TestNATSOutputReconnects(t *testing.T) {
	right := queues.NATSOptions{User: "connect", Password: "right"}
	n := queues.StartNATSWith(t, right)
	t.Setenv("NATS_SERVER_URL", n.URL())

	out := newOutput(t, "url: nats://events?stream=EVENTS")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := out.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte("before"))}); err != nil {
		t.Fatal(err)
	}
	var nc *nats.Conn
	if !out.topic.As(&nc) {
		t.Fatal("no NATS connection")
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	n.Restart(t, queues.NATSOptions{User: "connect", Password: "wrong"})
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("the connection was not closed")
	}
	n.Restart(t, right)

	// As the pipeline does: the output says it is not connected, and
	// connects again; the message is sent on the new connection.
	err := out.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte("after"))})
	if !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("a send on the closed connection: %v, want ErrNotConnected", err)
	}
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte("after"))}); err != nil {
		t.Fatalf("the server is back, and sends still fail: %v", err)
	}
	if got := receive(t, "nats://EVENTS?consumer=check", 2); got["before"] == nil || got["after"] == nil {
		t.Fatalf("received %v", got)
	}
}

// TestNATSOutputDeduplicates: a message with the metadata Nats-Msg-Id (sent
// as a header where the metadata filter includes it) is stored once by the
// stream, however often it is sent within the stream's duplicate window (2
// minutes by default): a batch sent again after a lost PubAck adds nothing.
func TestNATSOutputDeduplicates(t *testing.T) {
	n := startNATS(t)
	out := newOutput(t, "url: "+n.TopicURL("out")+"\nmetadata:\n  include_patterns: [ '^Nats-Msg-Id$' ]")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	msg := func(id string) *service.Message {
		m := service.NewMessage([]byte(id))
		m.MetaSetMut("Nats-Msg-Id", id)
		return m
	}
	for _, batch := range []service.MessageBatch{{msg("event-1"), msg("event-2")}, {msg("event-1")}} {
		if err := out.WriteBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.StreamMessages(t, n.prefix+"out"); got != 2 {
		t.Fatalf("the stream has %d messages, want 2", got)
	}
}

// TestNATSAsyncErrorsLogged: what the NATS client hears apart from any
// call goes to the component's logger, naming the subject. Publishing where
// the user may not, the send only times out; the server's reason, a
// permissions violation, went to stderr, past the logger's level and format.
func TestNATSAsyncErrorsLogged(t *testing.T) {
	n := queues.StartNATSWith(t, queues.NATSOptions{User: "connect", Password: "pw", DenyPublish: []string{"denied"}})
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "DENIED", "denied", "", 0)
	logged := &records{}
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(logged))
	send, err := b.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML("queue:\n  url: nats://denied"); err != nil {
		t.Fatal(err)
	}
	runStream(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- send(ctx, service.NewMessage([]byte("x"))) }()
	queues.Eventually(t, ctx, "the permissions violation logged", func() bool {
		return logged.has(slog.LevelError, "NATS subject denied", "Permissions Violation for Publish")
	})
	// Waited for here, not by the stream's stop (which would wait out its own timeout).
	if err := <-sent; err == nil {
		t.Fatal("a publish the server denied was acknowledged")
	}
}

// TestNATSOutputSurvivesServerCrash: the NATS server is killed (SIGKILL)
// while senders keep a stream's output busy, and started again on the same
// store. Every send the output acknowledged is in the stream afterwards:
// the output acknowledges a message once the stream's PubAck came, and the
// stream the topic creates (stream=) stores on file. A send that failed
// (no PubAck) is sent again, as an input would redeliver it.
func TestNATSOutputSurvivesServerCrash(t *testing.T) {
	p := queues.StartNATSProcess(t)
	t.Setenv("NATS_SERVER_URL", p.URL())
	send := runProducer(t, "url: nats://out?stream=OUT\nmax_in_flight: 16")
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	const senders, each = 16, 50
	var acked atomic.Int32
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := s * each; i < (s+1)*each && ctx.Err() == nil; {
				if send(ctx, service.NewMessage([]byte(body(i)))) == nil {
					acked.Add(1)
					i++
				}
			}
		})
	}
	queues.Eventually(t, ctx, "a third of the sends acknowledged", func() bool { return acked.Load() >= senders*each/3 })
	p.Crash(t)
	wg.Wait()
	var bodies []string
	for i := range senders * each {
		bodies = append(bodies, body(i))
	}
	got := receiveAll(t, "nats://OUT?consumer=check", bodies...)
	t.Logf("%d messages sent, %d in the stream (a send whose PubAck the crash lost is stored twice)", senders*each, got)
}
