package subscription

import (
	"runtime"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"
)

// A RabbitMQ delivery tag names a message on the channel that delivered it
// only. The broker closes a consumer's channel when a delivery stays
// unacknowledged past its consumer_timeout (30 minutes by default; the
// pipeline holds messages that long while Segment is unreachable), and
// puts back what the channel held. gocloud's driver then consumes on a new
// channel and sends every later ack and nack there, by tag: a held
// message's ack acknowledged whichever message the new channel had given
// that tag, which was lost if the pipeline had not delivered it yet
// (TestRabbitInputOutlivesConsumerTimeout). Ack and Nack settle a rabbit
// message on its own channel instead: once that closed, the message is
// back in the queue already and its settlement is moot.

// settleRabbit settles m, a rabbit subscription's message, on the channel
// that delivered it, and tells whether it could.
func settleRabbit(m *pubsub.Message, ack bool) bool {
	var d amqp.Delivery
	if !m.As(&d) || d.Acknowledger == nil {
		return false
	}
	if ack {
		_ = d.Ack(false) // fails once the channel closed: see channelWatch
	} else {
		_ = d.Nack(false, true)
	}
	// gocloud puts a finalizer on every message it hands out, which logs "A
	// pubsub.Message was never Acked or Nacked" through the standard logger
	// for a message it did not settle itself: a line for every rabbit
	// message read.
	runtime.SetFinalizer(m, nil)
	return true
}

// channelWatch logs, once a channel, why the broker closed a channel that
// delivered messages: those it held unacknowledged come again.
type channelWatch struct {
	queue string // as rabbit://<queue>
	log   *service.Logger

	mu      sync.Mutex
	current *amqp.Channel
}

// saw notes the channel that delivered m, watching it if it is new.
func (w *channelWatch) saw(m *pubsub.Message) {
	var d amqp.Delivery
	if w.log == nil || !m.As(&d) {
		return
	}
	ch, ok := d.Acknowledger.(*amqp.Channel)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch == w.current {
		return
	}
	w.current = ch
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		// Nothing comes when the client closed it (the connection's close
		// closes its channels).
		if e := <-closed; e != nil {
			w.closed(e)
		}
	}()
}

func (w *channelWatch) closed(e *amqp.Error) {
	if e.Code == amqp.PreconditionFailed && strings.Contains(e.Reason, "delivery acknowledgement") {
		w.log.Warnf("RabbitMQ %s: the broker's consumer_timeout closed the channel, because messages were held unacknowledged longer than it "+
			"(for example while Segment was unreachable): the broker puts them back and they come again, duplicates that Segment drops by messageId. "+
			"Set consumer_timeout above the longest Segment outage to ride out, or disable it (docs/queues.md). The broker said: %s", w.queue, e.Reason)
		return
	}
	w.log.Warnf("RabbitMQ %s: the broker closed the channel (%v): the messages it held unacknowledged come again", w.queue, e)
}
