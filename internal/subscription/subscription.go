// Package subscription opens gocloud.dev/pubsub subscriptions for the queue
// input and the braze_currents input's notifications, with corrections to
// gocloud's RabbitMQ driver (gocloud.dev/pubsub/rabbitpubsub). Its default
// opener dials RABBIT_SERVER_URL once per process and shares that
// connection between every topic and subscription, and a subscription's
// Shutdown leaves its channel and consumer open: the consumer kept taking
// messages and held them unacknowledged until the process exited. Without a
// prefetch_count the broker pushes the whole queue to a subscription. Open
// also bounds what gcppubsubv2's client leases ahead, and keeps what
// gcppubsub, awssqs and azuresb subscriptions hold from redelivery
// (leases.go), which their drivers do not; SQS through internal/awsqueue,
// whose requests time out, Service Bus through a driver of its own
// (azuresbdriver.go) and gcppubsub through one too (gcppubsub.go), both of
// which tell what they fetched; gcppubsubv2 through a
// driver of its own too (gcppubsubv2.go), whose Shutdown ends the streaming
// pull, then nacks what the client holds, before it returns.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/rabbitpubsub"

	"github.com/currents-connect/currents-connect/internal/awsqueue"
	"github.com/currents-connect/currents-connect/internal/driverlog"
	"github.com/currents-connect/currents-connect/internal/redact"
)

// RabbitServerEnv names the variable that holds the RabbitMQ server's URL.
const RabbitServerEnv = "RABBIT_SERVER_URL"

// Subscription is an open subscription with the connection it owns, if
// any: rabbit subscriptions get their own.
type Subscription struct {
	*pubsub.Subscription
	closeConn func() error // nil when it owns none
	watch     *channelWatch
	leases    *leases   // gcppubsub, awssqs and azuresb only
	v2        *v2Driver // gcppubsubv2 only
}

// Stopping tells s that its Shutdown comes next: a gcppubsubv2 message
// nacked from now on is nacked by the Shutdown, once the client's
// streaming pull ended. Nacked on the open stream, it could be delivered
// again onto the stream about to end, and wait out its ack deadline.
func (s *Subscription) Stopping() {
	if s.v2 != nil {
		s.v2.stop()
	}
}

// Receive receives the next message. Settle it with Ack or Nack.
func (s *Subscription) Receive(ctx context.Context) (*pubsub.Message, error) {
	m, err := s.Subscription.Receive(ctx)
	if err == nil && s.watch != nil {
		s.watch.saw(m)
	}
	if err == nil && s.leases != nil {
		s.leases.received(m)
	}
	return m, err
}

// Ack acknowledges m, which s received; a rabbit message whose channel
// closed comes again. A nil s settles m through gocloud, as m.Ack does.
func (s *Subscription) Ack(m *pubsub.Message) { s.settle(m, true) }

// Nack sends m, which s received, back to the queue; the caller checks
// m.Nackable first.
func (s *Subscription) Nack(m *pubsub.Message) { s.settle(m, false) }

// settle settles m where gocloud's own settlement falls short: a gcppubsub
// message is extended no more first, and a rabbit message is settled on
// the channel that delivered it (only a rabbit subscription's messages are
// asked: As panics on a message whose driver has no As).
func (s *Subscription) settle(m *pubsub.Message, ack bool) {
	if s != nil && s.leases != nil {
		s.leases.settled(m, ack)
	}
	switch {
	case s != nil && s.watch != nil && settleRabbit(m, ack):
	case ack:
		m.Ack()
	default:
		m.Nack()
	}
}

// Shutdown shuts the subscription down, which sends the acks still pending
// (unsettled messages come back), then closes the connection it owns:
// closing the connection is what removes a rabbit consumer and puts back
// what it held. A gcppubsubv2 Shutdown waits, within ctx, until the client
// ended its streaming pull and nacked what it still held.
func (s *Subscription) Shutdown(ctx context.Context) error {
	if s.leases != nil {
		s.leases.stopExtending()
	}
	err := s.Subscription.Shutdown(ctx)
	if s.v2 != nil {
		err = errors.Join(err, s.v2.wait(ctx))
	}
	if s.leases != nil {
		s.leases.close() // after it, as no fetch of its starts again
	}
	if s.closeConn != nil {
		err = errors.Join(err, s.closeConn())
	}
	return err
}

// Open opens the subscription at raw, with at most maxOutstanding messages
// received and not yet acknowledged where the driver can be told: a rabbit
// consumer's prefetch (unless the URL sets prefetch_count) and the
// gcppubsubv2 client's outstanding messages. Unbounded, they take messages
// ahead (the whole queue for rabbit, up to 1000 for Pub/Sub), held in
// memory and from the subscription's other consumers. A rabbit subscription
// gets a connection of its own, which its Shutdown closes. A gcppubsub,
// awssqs or azuresb subscription extends the deadline (visibility, lock)
// of the messages fetched until they are settled, and its Shutdown sends
// back those still held.
// Its errors show the URL as ShownURL does.
func Open(ctx context.Context, raw string, maxOutstanding int) (*Subscription, error) {
	sub, err := open(ctx, raw, maxOutstanding)
	if err != nil {
		return nil, HideURL(raw, err)
	}
	return sub, nil
}

func open(ctx context.Context, raw string, maxOutstanding int) (*Subscription, error) {
	u, err := url.Parse(raw)
	if err == nil && awsqueue.Handles(u.Scheme) {
		return openSQS(ctx, u)
	}
	if err == nil && u.Scheme == "azuresb" {
		return openServiceBus(ctx, u)
	}
	if err == nil && u.Scheme == "gcppubsubv2" {
		return openPubSubV2(ctx, u, maxOutstanding)
	}
	if err == nil && u.Scheme == "gcppubsub" {
		return openPubSub(ctx, u)
	}
	if err != nil || u.Scheme != rabbitpubsub.Scheme {
		sub, err := pubsub.OpenSubscription(ctx, raw)
		if err != nil {
			return nil, err
		}
		return &Subscription{Subscription: sub}, nil
	}
	if q := u.Query(); !q.Has("prefetch_count") {
		q.Set("prefetch_count", strconv.Itoa(maxOutstanding))
		u.RawQuery = q.Encode()
	}
	conn, err := rabbitDial()
	if err != nil {
		return nil, err
	}
	opener := &rabbitpubsub.URLOpener{Connection: conn}
	sub, err := opener.OpenSubscriptionURL(ctx, u)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	watch := &channelWatch{queue: "rabbit://" + path.Join(u.Host, u.Path), log: driverlog.From(ctx)}
	return &Subscription{Subscription: sub, watch: watch, closeConn: func() error {
		if err := conn.Close(); !errors.Is(err, amqp.ErrClosed) { // gone with the broker
			return err
		}
		return nil
	}}, nil
}

// rabbitDial connects to RABBIT_SERVER_URL's broker. Its errors name the
// broker as redact.URL shows it, its password and query values written
// xxxxx: one that is not a URL is not dialled, as url's and amqp's errors
// quote it whole.
func rabbitDial() (*amqp.Connection, error) {
	server := os.Getenv(RabbitServerEnv)
	if server == "" {
		return nil, fmt.Errorf("%s is not set", RabbitServerEnv)
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("%s is not a URL (not shown: it may hold a password; a %% or another reserved character in the password must be percent-encoded)", RabbitServerEnv)
	}
	conn, err := amqp.Dial(server)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s %s: %s", RabbitServerEnv, redact.URL(u), HideSecrets(err.Error(), RabbitServerSecrets()))
	}
	return conn, nil
}
