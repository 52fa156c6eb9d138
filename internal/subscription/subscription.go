// Package subscription opens gocloud.dev/pubsub subscriptions for the queue
// input and the braze_currents input's notifications, with corrections to
// gocloud's RabbitMQ driver (gocloud.dev/pubsub/rabbitpubsub). Its default
// opener dials RABBIT_SERVER_URL once per process and shares that
// connection between every topic and subscription, and a subscription's
// Shutdown leaves its channel and consumer open: the consumer kept taking
// messages and held them unacknowledged until the process exited. Without a
// prefetch_count the broker pushes the whole queue to a subscription.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/rabbitpubsub"
)

// RabbitServerEnv names the variable that holds the RabbitMQ server's URL.
const RabbitServerEnv = "RABBIT_SERVER_URL"

// Open opens the subscription at raw. A rabbit one gets a connection of its
// own, which closeConn closes once the subscription was shut down: closing
// the connection is what removes the consumer and puts back what it held.
// closeConn is nil for the other schemes.
func Open(ctx context.Context, raw string) (sub *pubsub.Subscription, closeConn func() error, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != rabbitpubsub.Scheme {
		sub, err = pubsub.OpenSubscription(ctx, raw)
		return sub, nil, err
	}
	conn, err := rabbitDial()
	if err != nil {
		return nil, nil, err
	}
	opener := &rabbitpubsub.URLOpener{Connection: conn}
	if sub, err = opener.OpenSubscriptionURL(ctx, u); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return sub, func() error {
		if err := conn.Close(); !errors.Is(err, amqp.ErrClosed) { // gone with the broker
			return err
		}
		return nil
	}, nil
}

// BoundPrefetch is a rabbit URL with the consumer prefetch set to n unless
// it sets one: without it the broker pushes the whole queue to the
// subscription, held in memory and from the queue's other consumers until
// acknowledged. Other URLs are returned as they are.
func BoundPrefetch(raw string, n int) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != rabbitpubsub.Scheme || u.Query().Has("prefetch_count") {
		return raw
	}
	q := u.Query()
	q.Set("prefetch_count", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// rabbitDial connects to RABBIT_SERVER_URL's broker. Its errors name the
// broker without the password.
func rabbitDial() (*amqp.Connection, error) {
	server := os.Getenv(RabbitServerEnv)
	if server == "" {
		return nil, fmt.Errorf("%s is not set", RabbitServerEnv)
	}
	shown := "(not a URL)"
	if u, err := url.Parse(server); err == nil {
		shown = u.Redacted()
	}
	conn, err := amqp.Dial(server)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s %s: %w", RabbitServerEnv, shown, err)
	}
	return conn, nil
}
