package subscription

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"time"

	rawpubsub "cloud.google.com/go/pubsub/v2"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// shutdownNacks bounds the nacks the Pub/Sub client sends at shutdown.
const shutdownNacks = 30 * time.Second

// openPubSubV2 opens the gcppubsubv2 subscription at u. gocloud's driver
// cancels the client's Receive on Close and returns: the client nacked what
// it was given back after that, on its own goroutine, while its streaming
// pull was still open, and the server at times delivered the message again
// onto that dying stream, where it waited out the ack deadline (up to 10
// minutes); what the client had leased ahead was extended for up to an
// hour, and the stream, still open, took new messages. v2Driver does the
// driver's work on the Subscriber gocloud's URL opener made (the opener
// dials, with the emulator or credentials, and checks the URL), and has
// the client end its streaming pull first, then nack everything it holds
// (ShutdownBehaviorNackImmediately), before Shutdown returns.
func openPubSubV2(ctx context.Context, u *url.URL, maxOutstanding int) (*Subscription, error) {
	rs, err := openedClient[*rawpubsub.Subscriber](ctx, u)
	if err != nil {
		return nil, err
	}
	boundLeases(rs, maxOutstanding)
	// The client stops extending a message it holds after MaxExtension, 60
	// minutes by default, and the server then delivers it again while it is
	// still in the pipeline: through a Segment outage of over an hour each
	// held notification came again, its object read again by another replica
	// (or moved to a dead-letter topic mid-read). Pub/Sub keeps a message
	// at most 7 days by default; a crashed process's messages come back after
	// the stream's ack deadline whatever this is.
	rs.ReceiveSettings.MaxExtension = maxHold
	rs.ReceiveSettings.ShutdownOptions = &rawpubsub.ShutdownOptions{
		Behavior: rawpubsub.ShutdownBehaviorNackImmediately, Timeout: shutdownNacks,
	}
	recv := &batcher.Options{MaxBatchSize: 1000, MaxHandlers: 1} // gocloud's
	if v := u.Query().Get("max_recv_batch_size"); v != "" {
		recv.MaxBatchSize, _ = strconv.Atoi(v) // checked by the opener
	}
	d := newV2Driver(rs)
	sub := pubsub.NewSubscription(d, recv, &batcher.Options{MaxBatchSize: 1, MaxHandlers: 1000})
	return &Subscription{Subscription: sub, v2: d}, nil
}

// maxHold is how long the client extends the deadline of a message held.
const maxHold = 7 * 24 * time.Hour

// boundLeases asks the Pub/Sub client for at most n messages outstanding,
// before its first receive: by default it leases up to 1000 messages or
// 1 GB, extending their deadlines while they wait in memory. The client
// sends the bound to the server with its streaming pull.
func boundLeases(rs *rawpubsub.Subscriber, n int) {
	rs.ReceiveSettings.MaxOutstandingMessages = n
}

// v2Driver runs the client's Receive in the background, from the first
// ReceiveBatch until Close. Each message's callback waits until the
// message is settled, or given up (left to the client's shutdown nacks).
type v2Driver struct {
	grpcErrors
	sub    *rawpubsub.Subscriber
	ctx    context.Context // the Receive's; Close cancels it
	cancel context.CancelFunc
	start  sync.Once
	done   chan struct{} // closed once Receive returned for good

	mu       sync.Mutex
	dms      []*driver.Message
	more     chan struct{} // closed and replaced when dms or err change
	err      error         // Receive's, for the next ReceiveBatch
	retry    chan struct{} // Receive is called again after its error was taken
	held     map[driver.AckID]chan settlement
	stopping bool // nacks are left to the shutdown
}

type settlement int

const (
	ack settlement = iota
	nack
	giveUp // the callback returns with the message unsettled
)

func newV2Driver(rs *rawpubsub.Subscriber) *v2Driver {
	ctx, cancel := context.WithCancel(context.Background())
	return &v2Driver{
		sub: rs, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		more: make(chan struct{}), retry: make(chan struct{}, 1), held: map[driver.AckID]chan settlement{},
	}
}

// stop leaves the nacks from now on to the shutdown, which sends them
// once the streaming pull ended.
func (d *v2Driver) stop() {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
}

// run calls Receive until Close, again after each error ReceiveBatch took.
func (d *v2Driver) run() {
	defer close(d.done)
	for d.ctx.Err() == nil {
		err := d.sub.Receive(d.ctx, d.deliver)
		if err == nil || d.ctx.Err() != nil {
			continue
		}
		d.mu.Lock()
		d.err = err
		d.changed()
		d.mu.Unlock()
		select {
		case <-d.retry:
		case <-d.ctx.Done():
		}
	}
}

// deliver is the client's callback: it hands m to ReceiveBatch and waits
// for its settlement. Once Receive is cancelled, a message not settled
// is left to the client's shutdown nacks.
func (d *v2Driver) deliver(_ context.Context, m *rawpubsub.Message) {
	id := driver.AckID(m.ID)
	ch := make(chan settlement, 1)
	d.mu.Lock()
	d.held[id] = ch
	d.dms = append(d.dms, &driver.Message{LoggableID: m.ID, Body: m.Data, Metadata: m.Attributes, AckID: id,
		AsFunc: func(i any) bool {
			p, ok := i.(**rawpubsub.Message)
			if ok {
				*p = m
			}
			return ok
		}})
	d.changed()
	d.mu.Unlock()
	var s settlement
	select {
	case s = <-ch:
	case <-d.ctx.Done():
		d.mu.Lock()
		if _, ok := d.held[id]; ok {
			delete(d.held, id)
			ch <- giveUp
		}
		d.mu.Unlock()
		s = <-ch // a settlement sent before the cancel is kept
	}
	switch s {
	case ack:
		m.Ack()
	case nack:
		m.Nack()
	}
}

// changed wakes the ReceiveBatch waiting; d.mu is held.
func (d *v2Driver) changed() {
	close(d.more)
	d.more = make(chan struct{})
}

func (d *v2Driver) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	d.start.Do(func() { go d.run() })
	for {
		d.mu.Lock()
		if err := d.err; err != nil {
			d.err = nil
			d.mu.Unlock()
			select {
			case d.retry <- struct{}{}:
			default:
			}
			return nil, err
		}
		if len(d.dms) > 0 {
			n := min(max, len(d.dms))
			dms := d.dms[:n:n]
			d.dms = d.dms[n:]
			d.mu.Unlock()
			return dms, nil
		}
		more := d.more
		d.mu.Unlock()
		select {
		case <-more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (d *v2Driver) settle(ids []driver.AckID, s settlement) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s == nack && d.stopping {
		s = giveUp
	}
	for _, id := range ids {
		if ch, ok := d.held[id]; ok {
			delete(d.held, id)
			ch <- s
		}
	}
}

func (d *v2Driver) SendAcks(_ context.Context, ids []driver.AckID) error {
	d.settle(ids, ack)
	return nil
}

func (d *v2Driver) CanNack() bool { return true }

func (d *v2Driver) SendNacks(_ context.Context, ids []driver.AckID) error {
	d.settle(ids, nack)
	return nil
}

func (d *v2Driver) As(i any) bool {
	p, ok := i.(**rawpubsub.Subscriber)
	if ok {
		*p = d.sub
	}
	return ok
}

// grpcErrors are the error methods of the Pub/Sub drivers, whose clients
// speak gRPC.
type grpcErrors struct{}

// IsRetryable: the client retries itself, DeadlineExceeded aside (as
// gocloud's drivers).
func (e grpcErrors) IsRetryable(err error) bool { return e.ErrorCode(err) == gcerrors.DeadlineExceeded }

func (grpcErrors) ErrorAs(err error, i any) bool {
	s, ok := status.FromError(err)
	p, isStatus := i.(**status.Status)
	if ok && isStatus {
		*p = s
	}
	return ok && isStatus
}

func (grpcErrors) ErrorCode(err error) gcerrors.ErrorCode {
	switch status.Code(err) {
	case codes.NotFound:
		return gcerrors.NotFound
	case codes.PermissionDenied:
		return gcerrors.PermissionDenied
	case codes.DeadlineExceeded:
		return gcerrors.DeadlineExceeded
	}
	return gcerrors.Unknown
}

// Close cancels Receive; wait waits for it to return.
func (d *v2Driver) Close() error {
	d.cancel()
	d.start.Do(func() { close(d.done) }) // never started
	return nil
}

// wait waits until Receive returned: the client ended its streaming pull
// and nacked what it still held.
func (d *v2Driver) wait(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
