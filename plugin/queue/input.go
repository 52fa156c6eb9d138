package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/driverlog"
	"github.com/currents-connect/currents-connect/internal/subscription"
)

const (
	fieldURL         = "url"
	fieldMaxInFlight = "max_in_flight"
)

// shutdownTimeout bounds the flush of pending acks when a subscription or
// topic closes.
const shutdownTimeout = 10 * time.Second

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Reads messages from a queue subscription (SQS, Google Pub/Sub, Azure Service Bus, RabbitMQ, NATS JetStream) through gocloud.dev/pubsub, acknowledging each only once the pipeline delivered it.").
		Description(`
The subscription is a ` + "`gocloud.dev/pubsub`" + ` URL. The schemes compiled in:

` + schemesDoc(false) + `
Any other scheme fails at start. Each driver's URL parameters and credentials are its own (see
https://gocloud.dev/howto/pubsub/subscribe/): for instance ` + "`awssqs://sqs.us-east-2.amazonaws.com/123456789012/myqueue?region=us-east-2`" + `
with the AWS default credential chain, ` + "`gcppubsubv2://my-project/my-subscription`" + ` with application default
credentials (or ` + "`PUBSUB_EMULATOR_HOST`" + `), ` + "`azuresb://my-topic?subscription=my-sub`" + ` with
` + "`SERVICEBUS_CONNECTION_STRING`" + `, ` + "`rabbit://my-queue`" + ` with ` + "`RABBIT_SERVER_URL`" + `. ` + "`nats://<stream>?consumer=<name>`" + ` (this
module's own driver) pulls from the durable JetStream consumer of that name with explicit acks, created
unless it exists and shared by every reader using the name; the server is ` + "`NATS_SERVER_URL`" + `'s
(` + "`nats://127.0.0.1:4222`" + ` by default).

Delivery is at least once. A message is acknowledged to the queue only once the pipeline acknowledged it
(every output delivered it). When the pipeline rejects it (a nack, an output error), the message is nacked
back to the queue, which redelivers it, possibly to another consumer; a driver that cannot nack gets the
message read again by this input. A message neither acknowledged nor nacked (the process died) comes
back once the queue's own visibility timeout or ack deadline has passed; a message that takes longer
than that in the pipeline can be delivered twice, except from ` + "`nats`" + `, ` + "`gcppubsub`" + ` and ` + "`gcppubsubv2`" + `, whose
deadlines the input or the client extends while the message is held. Deduplicate downstream where that matters.

The queue message's attributes become the message's metadata. At most ` + "`max_in_flight`" + ` messages are
in the pipeline at once, unacknowledged. The queue leases no more than that to ` + "`nats`" + `,
` + "`gcppubsubv2`" + ` (the client's outstanding messages are set to it) and ` + "`rabbit`" + ` (the consumer prefetch is
set to it unless the URL's ` + "`prefetch_count`" + ` sets another); the other drivers fetch batches ahead, bounded
by their own URL parameters (` + "`max_recv_batch_size`" + ` for ` + "`gcppubsub`" + `). On shutdown pending
acknowledgements are flushed to the queue, except with ` + "`gcppubsubv2`" + `, whose client sends them from a receive loop the driver does not wait for: a few may be
unsent when the process exits, and those messages are delivered again after a restart (never lost).`).
		Field(service.NewStringField(fieldURL).
			Description("The subscription's URL, with one of the schemes above.").
			Examples("gcppubsubv2://my-project/my-subscription", "awssqs://sqs.us-east-2.amazonaws.com/123456789012/myqueue?region=us-east-2").
			Secret()). // a URL may carry a password or a token: echo scrubs it
		Field(service.NewIntField(fieldMaxInFlight).
			Description("How many messages may be unacknowledged in the pipeline at once; reading waits while that many are.").
			Default(64).
			Advanced())
}

func init() {
	service.MustRegisterInput("queue", inputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.Input, error) {
		return inputFromParsed(conf, mgr)
	})
}

// queueInput reads one message at a time; each holds a slot of sem until
// its acknowledgement.
type queueInput struct {
	url *queueURL
	log *service.Logger
	sem chan struct{}
	// retry holds messages nacked by the pipeline that the driver cannot
	// nack: they are read again before new ones. At most max_in_flight.
	retry chan *pubsub.Message

	watchStop sync.Once // of Read's context

	mu       sync.Mutex
	sub      *subscription.Subscription
	stopping bool // the stream began to stop: each subscription is told (beginStop)
}

func inputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*queueInput, error) {
	raw, err := conf.FieldString(fieldURL)
	if err != nil {
		return nil, err
	}
	maxInFlight, err := conf.FieldInt(fieldMaxInFlight)
	if err != nil {
		return nil, err
	}
	if maxInFlight < 1 {
		return nil, errors.New("field max_in_flight: must be at least 1")
	}
	u, err := parseURL(fieldURL, raw, false)
	if err != nil {
		return nil, err
	}
	return &queueInput{
		url:   u,
		log:   mgr.Logger(),
		sem:   make(chan struct{}, maxInFlight),
		retry: make(chan *pubsub.Message, maxInFlight),
	}, nil
}

func (in *queueInput) Connect(ctx context.Context) error {
	sub, err := subscription.Open(driverlog.With(ctx, in.log), in.url.raw, cap(in.sem))
	if err != nil {
		return in.url.named("opening subscription", err) // Open hid the URL's secrets
	}
	in.mu.Lock()
	in.sub = sub
	stopping := in.stopping
	in.mu.Unlock()
	if stopping {
		sub.Stopping()
	}
	return nil
}

func (in *queueInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	// Connect (benthos v4.60.0's AsyncReader) passes every call the same
	// context, cancelled when the stream begins to stop, and calls Close only
	// once every message read was acknowledged or shutdown_timeout ran out.
	// Watched beyond the call, as the nacks of the drain come after it.
	in.watchStop.Do(func() { context.AfterFunc(ctx, in.beginStop) })
	select {
	case in.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	m, sub, err := in.next(ctx)
	if err != nil {
		<-in.sem
		return nil, nil, err
	}
	msg := service.NewMessage(m.Body)
	for k, v := range m.Metadata {
		msg.MetaSetMut(k, v)
	}
	return msg, func(_ context.Context, err error) error {
		defer func() { <-in.sem }()
		switch {
		case err == nil:
			sub.Ack(m)
		case m.Nackable():
			if ctx.Err() != nil {
				in.beginStop() // AfterFunc's goroutine may not have run yet
			}
			sub.Nack(m)
		default:
			in.retry <- m // never blocks: at most max_in_flight messages are out
		}
		return nil
	}, nil
}

// next is a message to retry, or else the subscription's next one, with
// the subscription that settles it (nil for a retry: its driver cannot
// nack, and gocloud settles it).
func (in *queueInput) next(ctx context.Context) (*pubsub.Message, *subscription.Subscription, error) {
	select {
	case m := <-in.retry:
		return m, nil, nil
	default:
	}
	in.mu.Lock()
	sub := in.sub
	in.mu.Unlock()
	if sub == nil {
		return nil, nil, service.ErrNotConnected
	}
	m, err := sub.Receive(ctx)
	if err == nil {
		return m, sub, nil
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	in.mu.Lock()
	closed := in.sub != sub
	in.mu.Unlock()
	if closed { // Close shut it down under this Receive
		return nil, nil, service.ErrNotConnected
	}
	// Receive retries what can be retried: this subscription is done, so
	// drop it and let Connect open a new one.
	in.log.Errorf("%v", in.url.scrub("receiving from", err))
	in.closeSub(ctx)
	return nil, nil, service.ErrNotConnected
}

func (in *queueInput) closeSub(ctx context.Context) {
	in.mu.Lock()
	sub := in.sub
	in.sub = nil
	in.mu.Unlock()
	if sub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := sub.Shutdown(ctx); err != nil {
		in.log.Warnf("%v", in.url.scrub("closing subscription", err))
	}
}

// beginStop tells the subscription that its Shutdown comes next: a
// gcppubsubv2 message nacked from now on is nacked by the Shutdown, once the
// streaming pull ended. Nacked on the open stream, the server could deliver
// it onto that ending stream again, or the client drop the nack as the
// stream closed: either way it waited out the stream's 60 s ack deadline.
func (in *queueInput) beginStop() {
	in.mu.Lock()
	in.stopping = true
	sub := in.sub
	in.mu.Unlock()
	if sub != nil {
		sub.Stopping()
	}
}

// Close flushes the acknowledgements sent so far: Connect calls it once the
// messages in flight were acknowledged or shutdown ran out of time.
func (in *queueInput) Close(ctx context.Context) error {
	in.beginStop()
	in.closeSub(ctx)
	return nil
}
