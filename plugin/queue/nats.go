package queue

// A gocloud.dev/pubsub driver for NATS JetStream, registered for the scheme
// nats. gocloud's own driver, gocloud.dev/pubsub/natspubsub, is a separate
// module that the module proxy this build uses does not serve.
//
//	topic:        nats://<subject>[?stream=<name>]
//	subscription: nats://<stream>?consumer=<durable name>
//
// The server is NATS_SERVER_URL's, nats://127.0.0.1:4222 by default. A topic
// publishes to JetStream: some stream must capture the subject, and with
// stream=NAME the topic creates that stream (capturing the subject) unless it
// exists. A subscription pulls from a durable consumer with explicit acks,
// created on the stream unless it exists; every subscription with the same
// consumer name shares it, each message going to one of them. Ack acks, Nack
// naks (the server redelivers after a delay growing with the deliveries),
// Close naks what is still held (redelivered at once),
// headers are metadata.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"

	"github.com/currents-connect/currents-connect/internal/driverlog"
)

const (
	natsScheme     = "nats"
	natsServerEnv  = "NATS_SERVER_URL"
	natsDefaultURL = "nats://127.0.0.1:4222"
)

func init() {
	pubsub.DefaultURLMux().RegisterTopic(natsScheme, natsOpener{})
	pubsub.DefaultURLMux().RegisterSubscription(natsScheme, natsOpener{})
}

type natsOpener struct{}

// natsConnect connects to NATS_SERVER_URL's server, or servers, for what
// (the subject or the stream and consumer). Its errors name them without
// their users and passwords. The errors the client hears apart from any
// call (a permissions violation: the publish itself only times out) go to
// the logger ctx carries, naming what; without one, nats.go writes them
// to stderr.
func natsConnect(ctx context.Context, what string) (*nats.Conn, jetstream.JetStream, error) {
	server := os.Getenv(natsServerEnv)
	if server == "" {
		server = natsDefaultURL
	}
	shown, err := natsServers(server)
	if err != nil {
		return nil, nil, err
	}
	opts := []nats.Option{nats.Name("currents-connect")}
	if log := driverlog.From(ctx); log != nil {
		opts = append(opts,
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				log.Errorf("NATS %s: %v", what, err)
			}),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warnf("NATS %s: disconnected from %s, reconnecting: %v", what, shown, err)
				}
			}),
			nats.ReconnectHandler(func(*nats.Conn) { log.Infof("NATS %s: reconnected", what) }))
	}
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS at %s: %w", shown, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream at %s: %w", shown, err)
	}
	return nc, js, nil
}

// natsServers is what errors show of a server list as nats.Connect reads
// it (comma-separated, each with nats:// and port 4222 unless it says
// otherwise): each server as scheme://host:port, never its user, password
// or token. A server that is no URL is an error naming its place in the
// list, not its text, which may hold them.
func natsServers(list string) (string, error) {
	var shown []string
	servers := strings.Split(list, ",")
	for i, s := range servers {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = natsScheme + "://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("%s: server %d of %d is not a URL (nats://[user:password@]host[:port])", natsServerEnv, i+1, len(servers))
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "4222")
		}
		shown = append(shown, u.Scheme+"://"+host)
	}
	return strings.Join(shown, ","), nil
}

func (natsOpener) OpenTopicURL(ctx context.Context, u *url.URL) (*pubsub.Topic, error) {
	subject := natsName(u)
	stream, err := natsParam(u, "stream")
	if err != nil {
		return nil, fmt.Errorf("nats topic %s: %w", subject, err)
	}
	if subject == "" {
		return nil, errors.New("nats topic: no subject (nats://<subject>)")
	}
	nc, js, err := natsConnect(ctx, "subject "+subject)
	if err != nil {
		return nil, fmt.Errorf("nats topic %s: %w", subject, err)
	}
	if stream != "" {
		if _, err := js.Stream(ctx, stream); errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}})
			if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				nc.Close()
				return nil, fmt.Errorf("nats topic %s: creating stream %s: %w", subject, stream, err)
			}
		} else if err != nil {
			nc.Close()
			return nil, fmt.Errorf("nats topic %s: stream %s: %w", subject, stream, err)
		}
	}
	// One message a batch: a message that fails fails alone; up to 100
	// are sent at once.
	return pubsub.NewTopic(&natsTopic{nc: nc, js: js, subject: subject},
		&batcher.Options{MaxBatchSize: 1, MaxHandlers: 100}), nil
}

func (natsOpener) OpenSubscriptionURL(ctx context.Context, u *url.URL) (*pubsub.Subscription, error) {
	stream := natsName(u)
	name, err := natsParam(u, "consumer")
	if err != nil {
		return nil, fmt.Errorf("nats subscription %s: %w", stream, err)
	}
	if stream == "" || name == "" {
		return nil, fmt.Errorf("nats subscription %q: want nats://<stream>?consumer=<durable name>", stream)
	}
	nc, js, err := natsConnect(ctx, "stream "+stream+" consumer "+name)
	if err != nil {
		return nil, fmt.Errorf("nats subscription %s: %w", stream, err)
	}
	cons, err := js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) { // another subscription won the race
			cons, err = js.Consumer(ctx, stream, name)
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats subscription %s consumer %s: %w", stream, name, err)
	}
	// One message a fetch, one fetch at a time: gocloud would fetch batches
	// of up to 1000 ahead of what was asked, leased to this subscription.
	sub := &natsSubscription{nc: nc, cons: cons, stream: stream, consumer: name, log: driverlog.From(ctx),
		maxDeliver:    cons.CachedInfo().Config.MaxDeliver,
		stopKeepAlive: make(chan struct{}), keptAlive: make(chan struct{})}
	go sub.keepAlive(natsKeepAlivePeriod(cons.CachedInfo().Config.AckWait))
	return pubsub.NewSubscription(sub,
		&batcher.Options{MaxBatchSize: 1, MaxHandlers: 1}, nil), nil
}

// natsName is the subject or stream the URL names: its host and path.
func natsName(u *url.URL) string {
	if u.Path == "" {
		return u.Host
	}
	return path.Join(u.Host, u.Path)
}

// natsParam is the value of the URL's one query parameter, name; any other
// is an error.
func natsParam(u *url.URL, name string) (string, error) {
	q := u.Query()
	v := q.Get(name)
	q.Del(name)
	for k := range q {
		return "", fmt.Errorf("unknown query parameter %q (only %s)", k, name)
	}
	return v, nil
}

type natsTopic struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

func (t *natsTopic) SendBatch(ctx context.Context, ms []*driver.Message) error {
	for _, m := range ms {
		msg := &nats.Msg{Subject: t.subject, Data: m.Body}
		if len(m.Metadata) > 0 {
			msg.Header = nats.Header{}
			for k, v := range m.Metadata {
				msg.Header.Set(k, v)
			}
		}
		if m.BeforeSend != nil {
			if err := m.BeforeSend(natsAs(msg)); err != nil {
				return err
			}
		}
		ack, err := t.js.PublishMsg(ctx, msg)
		if err != nil {
			return fmt.Errorf("publishing to nats subject %s: %w", t.subject, err)
		}
		if m.AfterSend != nil {
			if err := m.AfterSend(natsAs(ack)); err != nil {
				return err
			}
		}
	}
	return nil
}

// natsAs is an As function that fills a pointer to v's type.
func natsAs[T any](v T) func(any) bool {
	return func(i any) bool {
		p, ok := i.(*T)
		if ok {
			*p = v
		}
		return ok
	}
}

// Publishing is not retried here: the pipeline retries what failed.
func (t *natsTopic) IsRetryable(error) bool                 { return false }
func (t *natsTopic) As(i any) bool                          { return natsAs(t.nc)(i) }
func (t *natsTopic) ErrorAs(err error, i any) bool          { return errors.As(err, i) }
func (t *natsTopic) ErrorCode(err error) gcerrors.ErrorCode { return natsErrorCode(err) }
func (t *natsTopic) Close() error                           { t.nc.Close(); return nil }

func natsErrorCode(err error) gcerrors.ErrorCode {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return gcerrors.NotFound
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return gcerrors.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return gcerrors.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return gcerrors.Canceled
	}
	return gcerrors.Unknown
}
