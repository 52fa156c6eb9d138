package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub/driver"
)

// natsWait bounds one wait of ReceiveBatch for a message when none is
// waiting: gocloud calls it again at once after an empty batch. A variable
// for the tests.
var natsWait = time.Second

// natsSubscription is the driver of a nats:// subscription: a pull
// consumer fetched one message at a time.
type natsSubscription struct {
	nc               *nats.Conn
	cons             jetstream.Consumer
	stream, consumer string
	log              *service.Logger // may be nil
	// maxDeliver is the consumer's MaxDeliver: the server delivers a
	// message no more often than that (-1: no bound, the default).
	maxDeliver int

	// held are the messages received and neither acked nor naked: Close
	// naks them, so that the consumer's other subscriptions get them at
	// once instead of after its ack wait. gocloud's Shutdown drops the
	// messages it fetched ahead without a word.
	mu       sync.Mutex
	held     map[jetstream.Msg]struct{}
	closed   bool
	fetching sync.WaitGroup
	// stopKeepAlive ends keepAlive; keptAlive is closed when it has.
	stopKeepAlive, keptAlive chan struct{}
}

// natsKeepAlivePeriod is how often the messages held are reported in
// progress: a third of the consumer's ack wait, so that a late tick on a
// loaded machine still comes in time.
func natsKeepAlivePeriod(ackWait time.Duration) time.Duration {
	if ackWait <= 0 {
		ackWait = 30 * time.Second // the server's default
	}
	return max(ackWait/3, 100*time.Millisecond)
}

// keepAlive tells the server every period that the messages held are still
// being worked on (+WPI). Without it, a message held past the consumer's
// ack wait (30 s by default), for instance while Segment is unreachable or
// refuses the write key, was delivered again while still in the pipeline:
// a duplicate, and a delivery counted towards the consumer's max_deliver.
func (s *natsSubscription) keepAlive(period time.Duration) {
	defer close(s.keptAlive)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-s.stopKeepAlive:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		held := slices.Collect(maps.Keys(s.held))
		s.mu.Unlock()
		for _, m := range held {
			// An ack that overtook this is final: the server ignores the
			// +WPI of a message no longer pending.
			_ = m.InProgress()
		}
	}
}

// errNATSClosed is ReceiveBatch's error once Close began.
var errNATSClosed = errors.New("nats subscription closed")

// ReceiveBatch takes the messages waiting, up to maxMessages, or else waits
// up to natsWait for one. A fetch is never abandoned halfway, not even when
// ctx ends (gocloud's Shutdown): the server would go on delivering to its
// request, and what it delivered after would wait out the ack wait.
func (s *natsSubscription) ReceiveBatch(ctx context.Context, maxMessages int) ([]*driver.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.errorf(errNATSClosed)
	}
	s.fetching.Add(1)
	s.mu.Unlock()
	defer s.fetching.Done()
	batch, err := s.cons.FetchNoWait(maxMessages)
	if err != nil {
		return nil, s.errorf(err)
	}
	ms, err := s.collect(batch)
	if len(ms) > 0 || err != nil {
		return ms, err
	}
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), natsWait)
	defer cancel()
	batch, err = s.cons.Fetch(1, jetstream.FetchContext(wait))
	if err != nil {
		return nil, s.errorf(err)
	}
	return s.collect(batch)
}

func (s *natsSubscription) collect(batch jetstream.MessageBatch) ([]*driver.Message, error) {
	var ms []*driver.Message
	for msg := range batch.Messages() {
		dm := &driver.Message{Body: msg.Data(), AckID: msg, AsFunc: natsAs(msg)}
		if meta, err := msg.Metadata(); err == nil {
			dm.LoggableID = fmt.Sprintf("%s/%d", s.stream, meta.Sequence.Stream)
		}
		for k, vs := range msg.Headers() {
			if len(vs) > 0 {
				if dm.Metadata == nil {
					dm.Metadata = map[string]string{}
				}
				dm.Metadata[k] = vs[0]
			}
		}
		ms = append(ms, dm)
	}
	if err := batch.Error(); err != nil && len(ms) == 0 &&
		!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, s.errorf(err)
	}
	return s.hold(ms), nil
}

// hold records ms as held, or naks them if Close began: its fetch ended
// after gocloud's Shutdown, which takes no more messages.
func (s *natsSubscription) hold(ms []*driver.Message) []*driver.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, m := range ms {
			_ = m.AckID.(jetstream.Msg).Nak()
		}
		return nil
	}
	if s.held == nil {
		s.held = map[jetstream.Msg]struct{}{}
	}
	for _, m := range ms {
		s.held[m.AckID.(jetstream.Msg)] = struct{}{}
	}
	return ms
}

func (s *natsSubscription) errorf(err error) error {
	return fmt.Errorf("nats stream %s consumer %s: %w", s.stream, s.consumer, err)
}

func (s *natsSubscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	return s.each(ids, jetstream.Msg.Ack)
}

func (s *natsSubscription) CanNack() bool { return true }

// SendNacks naks: the server redelivers the messages after a delay that
// grows with their deliveries, possibly to another subscription of the
// consumer.
func (s *natsSubscription) SendNacks(_ context.Context, ids []driver.AckID) error {
	return s.each(ids, s.nak)
}

// nak naks m, for the server to deliver it again after natsNakDelay. It
// says so where the server will not: m reached the consumer's MaxDeliver (a
// consumer made elsewhere), and it stays in the stream, read by no one,
// until someone acts on it.
func (s *natsSubscription) nak(m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return m.Nak()
	}
	if s.maxDeliver > 0 && meta.NumDelivered >= uint64(s.maxDeliver) && s.log != nil {
		s.log.Errorf("NATS stream %s consumer %s: message %d was delivered %d times, the consumer's max_deliver, and rejected each time: "+
			"the server will not deliver it again; it stays in the stream", s.stream, s.consumer, meta.Sequence.Stream, meta.NumDelivered)
	}
	return m.NakWithDelay(natsNakDelay(meta.NumDelivered))
}

// natsMaxNakDelay bounds natsNakDelay.
const natsMaxNakDelay = time.Minute

// natsNakDelay is how long a message rejected after its delivered-th
// delivery waits before the next: 1 s, doubling up to natsMaxNakDelay.
// Redelivered at once, a message the pipeline rejects every time came back
// some 4,600 times a second.
func natsNakDelay(delivered uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < delivered && d < natsMaxNakDelay; i++ {
		d *= 2
	}
	return min(d, natsMaxNakDelay)
}

func (s *natsSubscription) each(ids []driver.AckID, f func(jetstream.Msg) error) error {
	var errs []error
	for _, id := range ids {
		m := id.(jetstream.Msg)
		s.mu.Lock()
		delete(s.held, m)
		s.mu.Unlock()
		if err := f(m); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s.errorf(err)
	}
	return nil
}

func (s *natsSubscription) IsRetryable(error) bool        { return false }
func (s *natsSubscription) As(i any) bool                 { return natsAs(s.cons)(i) }
func (s *natsSubscription) ErrorAs(err error, i any) bool { return errors.As(err, i) }
func (s *natsSubscription) ErrorCode(err error) gcerrors.ErrorCode {
	return natsErrorCode(err)
}

// Close waits for the fetch under way (natsWait at most), naks the messages
// still held (gocloud's Shutdown sent the acks first), and closes the
// connection once the server has the naks.
func (s *natsSubscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stopKeepAlive)
	<-s.keptAlive
	s.fetching.Wait()
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for m := range held {
		_ = m.Nak()
	}
	if len(held) > 0 {
		_ = s.nc.FlushTimeout(natsWait)
	}
	s.nc.Close()
	return nil
}
