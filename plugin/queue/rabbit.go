package queue

// RabbitMQ publishes through gocloud's driver (gocloud.dev/pubsub/rabbitpubsub),
// which sends transient messages: a broker restart drops them from a durable
// classic queue after confirming them. Subscriptions open through
// internal/subscription, which corrects the driver's shared connection and
// unbounded prefetch.

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

// persistent marks a message for RabbitMQ as persistent (delivery mode 2),
// so that a durable queue keeps it across a broker restart once the broker
// confirmed it. The other drivers have no amqp.Publishing: nothing to do.
func persistent(as func(any) bool) error {
	var p *amqp.Publishing
	if as(&p) {
		p.DeliveryMode = amqp.Persistent
	}
	return nil
}
