package queues

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is a running NATS server with JetStream, in process on loopback.
// Processes reach it through NATS_SERVER_URL (the nats scheme's driver).
type NATS struct {
	srv   *server.Server
	opts  NATSOptions
	port  int
	store string
	nc    *nats.Conn
	js    jetstream.JetStream
}

// NATSOptions are how a NATS server starts.
type NATSOptions struct {
	// User and Password, when User is set, are the one account clients log
	// in with; URL carries them.
	User, Password string
	// DenyPublish are subjects the user may not publish to: the server
	// answers a publish there with a permissions violation, an asynchronous
	// error the client hears apart from the publish.
	DenyPublish []string
}

// StartNATS starts a NATS server on a random loopback port with JetStream
// stored in a temporary directory, stopped when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSWith(t, NATSOptions{})
}

// StartNATSWith starts a NATS server as StartNATS does, with opts.
func StartNATSWith(t testing.TB, opts NATSOptions) *NATS {
	t.Helper()
	n := &NATS{store: t.TempDir()}
	n.start(t, opts)
	return n
}

// Restart stops the server and starts it again with opts, on the same port
// with the same store: clients connected to it see an outage, then a server
// that may want another password.
func (n *NATS) Restart(t testing.TB, opts NATSOptions) {
	t.Helper()
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.start(t, opts)
}

func (n *NATS) start(t testing.TB, opts NATSOptions) {
	t.Helper()
	o := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: n.store,
	}
	if n.port != 0 {
		o.Port = n.port
	}
	if opts.User != "" {
		u := &server.User{Username: opts.User, Password: opts.Password}
		if len(opts.DenyPublish) > 0 {
			u.Permissions = &server.Permissions{Publish: &server.SubjectPermission{Deny: opts.DenyPublish}}
		}
		o.Users = []*server.User{u}
	}
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	n.srv, n.opts, n.port = srv, opts, srv.Addr().(*net.TCPAddr).Port
	n.nc, n.js = jetStreamClient(t, n.URL())
}

// jetStreamClient connects to the server at url, until the test ends.
func jetStreamClient(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// URL is the server's client URL, nats://127.0.0.1:<port>, with the user
// and password when it has one.
func (n *NATS) URL() string {
	u := &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", n.port)}
	if n.opts.User != "" {
		u.User = url.UserPassword(n.opts.User, n.opts.Password)
	}
	return u.String()
}

// Env is the environment a process needs to use this server.
func (n *NATS) Env() []string { return []string{"NATS_SERVER_URL=" + n.URL()} }

// TopicURL and SubscriptionURL are gocloud.dev/pubsub URLs (nats): a
// subject, and a stream's durable consumer.
func (n *NATS) TopicURL(subject string) string { return "nats://" + subject }

func (n *NATS) SubscriptionURL(stream, consumer string) string {
	return "nats://" + stream + "?consumer=" + consumer
}

// CreateStream creates a stream capturing subject, and a durable pull
// consumer on it with explicit acks and ackWait (how long an unacknowledged
// message waits before redelivery) unless consumer is empty.
func (n *NATS) CreateStream(t testing.TB, stream, subject, consumer string, ackWait time.Duration) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	if consumer == "" {
		return
	}
	if _, err := n.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
	}); err != nil {
		t.Fatal(err)
	}
}

// CreateConsumer creates a consumer on the stream as cfg says, for the
// settings CreateStream leaves at their defaults (MaxDeliver).
func (n *NATS) CreateConsumer(t testing.TB, stream string, cfg jetstream.ConsumerConfig) {
	t.Helper()
	if _, err := n.js.CreateConsumer(context.Background(), stream, cfg); err != nil {
		t.Fatal(err)
	}
}

// Publish publishes one message with headers to a subject, through
// JetStream: it returns once a stream stored it.
func (n *NATS) Publish(t testing.TB, subject string, data []byte, headers map[string]string) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	for k, v := range headers {
		msg.Header.Set(k, v)
	}
	if _, err := n.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// Deliveries is how many deliveries the stream's consumer made, the
// redeliveries included: with one message published, more than one means
// the server redelivered it.
func (n *NATS) Deliveries(t testing.TB, stream, consumer string) int {
	t.Helper()
	return int(n.ConsumerInfo(t, stream, consumer).Delivered.Consumer)
}

// StreamMessages is how many messages the stream holds now. The server
// stores a message before it answers its publisher, so this counts every
// send that returned; a consumer's NumPending is updated after that, and can
// still lag it.
func (n *NATS) StreamMessages(t testing.TB, stream string) uint64 {
	t.Helper()
	s, err := n.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// ConsumerInfo is what the server says of the stream's consumer now: its
// deliveries, the pull requests waiting (NumWaiting), the messages not yet
// delivered (NumPending).
func (n *NATS) ConsumerInfo(t testing.TB, stream, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := n.js.Consumer(context.Background(), stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}
