package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/awsqueue"
	"github.com/currents-connect/currents-connect/internal/driverlog"
)

const (
	fieldMetadata = "metadata"
	fieldBatching = "batching"
)

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Sends messages to a queue or topic (SQS, SNS, Google Pub/Sub, Azure Service Bus, RabbitMQ, NATS JetStream) through gocloud.dev/pubsub, acknowledging each only once the queue accepted it.").
		Description(`
The topic is a ` + "`gocloud.dev/pubsub`" + ` URL. The schemes compiled in:

` + schemesDoc(true) + `
Any other scheme fails at start. Each driver's URL parameters and credentials are its own (see
https://gocloud.dev/howto/pubsub/publish/): for instance ` + "`awssqs://sqs.us-east-2.amazonaws.com/123456789012/myqueue?region=us-east-2`" + `,
` + "`awssns:///arn:aws:sns:us-east-2:123456789012:mytopic?region=us-east-2`" + `, ` + "`gcppubsubv2://my-project/my-topic`" + `,
` + "`azuresb://my-topic`" + `, ` + "`rabbit://my-exchange`" + `, ` + "`nats://orders.created?stream=ORDERS`" + ` (this
module's own driver: publishes to JetStream on the subject; with ` + "`stream`" + ` the stream is created for
the subject unless it exists, without it some stream must capture the subject; the server is
` + "`NATS_SERVER_URL`" + `'s).

Delivery is at least once: a batch is acknowledged only once every one of its messages was accepted by the
queue; the messages that failed are reported one by one, so only they are retried (or routed by a
` + "`fallback`" + `). The drivers batch sends to the queue themselves, except SQS and SNS (one message a request, up
to 100 at once: a request fails as a whole) and NATS (one message a publish, up to 100 at once); ` + "`batching`" + ` and ` + "`max_in_flight`" + ` decide how many messages are
being sent at once. A connection closed for good (NATS after its reconnect attempts, or
RabbitMQ's) makes the output connect again and resend the batch.

Metadata is sent as message attributes only where ` + "`metadata`" + ` includes it (none by default). Queues limit
attributes: SQS and SNS take at most 10 per message.`).
		Field(service.NewStringField(fieldURL).
			Description("The topic's or queue's URL, with one of the schemes above.").
			Examples("gcppubsubv2://my-project/my-topic", "awssqs://sqs.us-east-2.amazonaws.com/123456789012/myqueue?region=us-east-2").
			Secret()). // a URL may carry a password or a token: echo scrubs it
		Field(service.NewMetadataFilterField(fieldMetadata).
			Description("Which metadata to send as message attributes.").
			Optional().
			Advanced()).
		Field(service.NewOutputMaxInFlightField()).
		Field(service.NewBatchPolicyField(fieldBatching))
}

func init() {
	service.MustRegisterBatchOutput("queue", outputSpec(), func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
		return outputFromParsed(conf, mgr)
	})
}

type queueOutput struct {
	url  *queueURL
	meta *service.MetadataFilter // nil: no metadata sent
	log  *service.Logger

	mu    sync.RWMutex
	topic *pubsub.Topic
}

func outputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (out *queueOutput, pol service.BatchPolicy, maxInFlight int, err error) {
	raw, err := conf.FieldString(fieldURL)
	if err != nil {
		return
	}
	u, err := parseURL(fieldURL, raw, true)
	if err != nil {
		return
	}
	out = &queueOutput{url: u, log: mgr.Logger()}
	if conf.Contains(fieldMetadata) {
		if out.meta, err = conf.FieldMetadataFilter(fieldMetadata); err != nil {
			return
		}
	}
	if maxInFlight, err = conf.FieldMaxInFlight(); err != nil {
		return
	}
	pol, err = conf.FieldBatchPolicy(fieldBatching)
	return
}

func (o *queueOutput) Connect(ctx context.Context) error {
	topic, err := openTopic(driverlog.With(ctx, o.log), o.url.raw)
	if err != nil {
		return o.url.scrub("opening topic", err)
	}
	o.mu.Lock()
	o.topic = topic
	o.mu.Unlock()
	return nil
}

// openTopic opens the topic at raw; SQS and SNS topics through awsqueue,
// whose requests time out.
func openTopic(ctx context.Context, raw string) (*pubsub.Topic, error) {
	if u, err := url.Parse(raw); err == nil && awsqueue.Handles(u.Scheme) {
		return awsqueue.OpenTopic(ctx, u)
	}
	return pubsub.OpenTopic(ctx, raw)
}

// WriteBatch sends every message at once (the driver batches them) and
// returns once every send returned, naming the messages that failed.
func (o *queueOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.RLock()
	topic := o.topic
	o.mu.RUnlock()
	if topic == nil {
		return service.ErrNotConnected
	}
	errs := make([]error, len(batch))
	var gone atomic.Bool
	var wg sync.WaitGroup
	for i, msg := range batch {
		m, err := o.toQueue(msg)
		if err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() {
			if err := tooLargeForServiceBus(ctx, topic, m); err != nil {
				errs[i] = o.url.named("sending to", err)
				return
			}
			if err := topic.Send(ctx, m); err != nil {
				errs[i] = o.url.scrub("sending to", err)
				if connectionGone(err) {
					gone.Store(true)
				}
			}
		})
	}
	wg.Wait()
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed == 0 {
		return nil
	}
	if gone.Load() {
		// The pipeline retries the whole batch once Connect opened a new
		// topic, which dials anew: the messages sent already arrive twice.
		o.log.Errorf("%v; the connection is closed for good, opening the topic again", first)
		_ = o.closeTopic(ctx, topic)
		return service.ErrNotConnected
	}
	if len(batch) == 1 {
		return first
	}
	batchErr := service.NewBatchError(batch, fmt.Errorf("%d of %d messages failed, the first: %w", failed, len(batch), first))
	for i, err := range errs {
		if err != nil {
			batchErr.Failed(i, err)
		}
	}
	return batchErr
}

// toQueue is msg as a queue message: its body, and the metadata the filter
// includes as attributes.
func (o *queueOutput) toQueue(msg *service.Message) (*pubsub.Message, error) {
	body, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	m := &pubsub.Message{Body: body, BeforeSend: persistent}
	if o.meta == nil {
		return m, nil
	}
	_ = o.meta.Walk(msg, func(k, v string) error {
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		m.Metadata[k] = v
		return nil
	})
	return m, nil
}

// connectionGone is whether err says the topic's connection is closed for
// good: nats.go gives up reconnecting after its attempts (two minutes) or
// the same authorisation error twice, amqp091 (rabbit) never reconnects. A
// new topic dials anew. The other drivers' clients reconnect themselves.
func connectionGone(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, amqp.ErrClosed)
}

func (o *queueOutput) Close(ctx context.Context) error {
	o.mu.RLock()
	topic := o.topic
	o.mu.RUnlock()
	return o.closeTopic(ctx, topic)
}

// closeTopic shuts topic down unless another call did already.
func (o *queueOutput) closeTopic(ctx context.Context, topic *pubsub.Topic) error {
	o.mu.Lock()
	if topic == nil || o.topic != topic {
		o.mu.Unlock()
		return nil
	}
	o.topic = nil
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := topic.Shutdown(ctx); err != nil {
		return o.url.scrub("closing topic", err)
	}
	return nil
}
