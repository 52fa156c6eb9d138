package subscription

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"

	"github.com/currents-connect/currents-connect/internal/driverlog"
)

// openServiceBus opens the azuresb subscription at u, whose messages keep
// their locks from the moment Service Bus delivered them until they are
// settled. gocloud's azuresb driver fetches ahead of the input (up to 50 a
// receive) and tells no one what it fetched: a message waiting in its
// buffer through a Segment outage lost its lock and came back, a duplicate.
// sbDriver does the driver's work on the receiver gocloud's URL opener made
// (the opener reads the connection string or the host name with Azure AD,
// and checks the URL), and reports each receive's lock tokens as they come.
func openServiceBus(ctx context.Context, u *url.URL) (*Subscription, error) {
	r, err := sbReceiver(ctx, u)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	listen := 2 * time.Second // gocloud's
	if v := q.Get("listener_timeout"); v != "" {
		listen, _ = time.ParseDuration(v) // checked by the opener
	}
	recv := &batcher.Options{MaxBatchSize: 50, MaxHandlers: 100}
	if v := q.Get("max_recv_batch_size"); v != "" {
		recv.MaxBatchSize, _ = strconv.Atoi(v)
	}
	svc := &sbLeases{receiver: r, entity: sbEntity(u), now: time.Now}
	l := startLeases(svc, driverlog.From(ctx))
	d := &sbDriver{receiver: r, listen: listen, fetched: func(m *azservicebus.ReceivedMessage) {
		first := time.Duration(0)
		if m.LockedUntil != nil {
			first = svc.firstLock(*m.LockedUntil, time.Now())
		}
		l.hold([]string{lockID(m)}, first)
	}}
	d.settler = func(ctx context.Context) (*azservicebus.Receiver, error) { return sbReceiver(ctx, u) }
	d.log, d.entity, d.unsettled = driverlog.From(ctx), svc.entity, map[*azservicebus.ReceivedMessage]bool{}
	sub := pubsub.NewSubscription(d, recv, &batcher.Options{MaxBatchSize: 1, MaxHandlers: 100})
	return &Subscription{Subscription: sub, leases: l}, nil
}

// sbReceiver is a receiver of the subscription at u, made by gocloud's URL
// opener. It attaches its links when first used.
func sbReceiver(ctx context.Context, u *url.URL) (*azservicebus.Receiver, error) {
	return openedClient[*azservicebus.Receiver](ctx, u)
}

// openedClient is the client of type T of the subscription that gocloud's
// URL opener opens at u, for a driver of our own: the opener dials (with
// the emulator, credentials or connection string) and checks the URL.
// gocloud's driver receives only when received from and closes nothing, so
// its subscription is shut down at once.
func openedClient[T any](ctx context.Context, u *url.URL) (T, error) {
	var c T
	opened, err := pubsub.OpenSubscription(ctx, u.String())
	if err != nil {
		return c, err
	}
	ok := opened.As(&c)
	if err := opened.Shutdown(ctx); err != nil {
		return c, err
	}
	if !ok {
		return c, fmt.Errorf("%s: gocloud's driver gave no %T", u.Scheme, c)
	}
	return c, nil
}

// sbDriver receives in peek-lock mode, completes (ack) and abandons
// (nack) one message at a time, as gocloud's azuresb driver does.
type sbDriver struct {
	receiver *azservicebus.Receiver
	// settler opens another receiver of the subscription, whose
	// $management link settles by lock token what receiver got.
	settler func(context.Context) (*azservicebus.Receiver, error)
	log     *service.Logger // may be nil
	entity  string          // for logs
	listen  time.Duration   // how long a receive waits for messages
	fetched func(*azservicebus.ReceivedMessage)

	// unsettled are the messages received and not yet settled, in the
	// input or in gocloud's buffer ahead of it: Close abandons them.
	mu        sync.Mutex
	unsettled map[*azservicebus.ReceivedMessage]bool
	receiving sync.WaitGroup // receives under way
}

func (d *sbDriver) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	d.receiving.Add(1)
	defer d.receiving.Done()
	rctx, cancel := context.WithTimeout(ctx, d.listen)
	defer cancel()
	got, err := d.receiver.ReceiveMessages(rctx, max, nil)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		err = nil // nothing came within the listener timeout
	}
	d.mu.Lock()
	for _, m := range got {
		d.unsettled[m] = true
	}
	d.mu.Unlock()
	msgs := make([]*driver.Message, 0, len(got))
	for _, m := range got {
		d.fetched(m)
		meta := map[string]string{}
		for k, v := range m.ApplicationProperties {
			if s, ok := v.(string); ok {
				meta[k] = s
			}
		}
		msgs = append(msgs, &driver.Message{LoggableID: m.MessageID, Body: m.Body, Metadata: meta, AckID: m,
			AsFunc: func(i any) bool {
				p, ok := i.(**azservicebus.ReceivedMessage)
				if ok {
					*p = m
				}
				return ok
			}})
	}
	return msgs, err
}

func (d *sbDriver) SendAcks(ctx context.Context, ids []driver.AckID) error {
	var err error
	for _, id := range ids {
		m := id.(*azservicebus.ReceivedMessage)
		d.settled(m)
		err = errors.Join(err, d.receiver.CompleteMessage(ctx, m, nil))
	}
	return err
}

// settled forgets m, settled now: Close leaves it alone.
func (d *sbDriver) settled(m *azservicebus.ReceivedMessage) {
	d.mu.Lock()
	delete(d.unsettled, m)
	d.mu.Unlock()
}

func (d *sbDriver) CanNack() bool { return true }

func (d *sbDriver) SendNacks(ctx context.Context, ids []driver.AckID) error {
	var err error
	for _, id := range ids {
		m := id.(*azservicebus.ReceivedMessage)
		d.settled(m)
		err = errors.Join(err, d.receiver.AbandonMessage(ctx, m, nil))
	}
	return err
}

// IsRetryable: the SDK retries itself; what it gives up on is tried again
// unless the entity is missing or the credentials are refused.
func (d *sbDriver) IsRetryable(err error) bool {
	c := d.ErrorCode(err)
	return c != gcerrors.NotFound && c != gcerrors.PermissionDenied
}

func (d *sbDriver) As(i any) bool {
	p, ok := i.(**azservicebus.Receiver)
	if ok {
		*p = d.receiver
	}
	return ok
}

func (d *sbDriver) ErrorAs(err error, i any) bool { return errors.As(err, i) }

func (d *sbDriver) ErrorCode(err error) gcerrors.ErrorCode {
	sbErr, ok := errors.AsType[*azservicebus.Error](err)
	switch {
	case !ok:
		return gcerrors.Unknown
	case sbErr.Code == azservicebus.CodeNotFound:
		return gcerrors.NotFound
	case sbErr.Code == azservicebus.CodeUnauthorizedAccess:
		return gcerrors.PermissionDenied
	}
	return gcerrors.Unknown
}

// Close closes the receiver, then abandons what is still unsettled: gocloud
// calls it once the acks and nacks were sent, so no one will settle those
// (the input's shutdown ran out of time with Segment down, or gocloud had
// fetched them ahead). Left to their locks, they came back only once those
// ended (60 s by default, up to 5 min). Abandoned on the receiving link,
// which still had credit, they were delivered to it again and kept their
// new locks as it closed: they are abandoned by lock token through another
// receiver's $management link instead, once the link is gone. Receives
// under way were cancelled; what they return is abandoned too.
func (d *sbDriver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), extendTimeout)
	defer cancel()
	received := make(chan struct{})
	go func() { d.receiving.Wait(); close(received) }()
	select {
	case <-received:
	case <-ctx.Done():
	}
	d.mu.Lock()
	held := slices.Collect(maps.Keys(d.unsettled))
	clear(d.unsettled)
	d.mu.Unlock()
	err := d.receiver.Close(ctx)
	if len(held) > 0 {
		d.abandon(ctx, held)
	}
	return err
}

// abandon abandons held by lock token. A lock lost meanwhile (its message
// settled or back) needs nothing; other failures leave the message locked
// until its lock ends, as before.
func (d *sbDriver) abandon(ctx context.Context, held []*azservicebus.ReceivedMessage) {
	r, err := d.settler(ctx)
	var failed error
	if err == nil {
		for _, m := range held {
			err := r.AbandonMessage(ctx, &azservicebus.ReceivedMessage{LockToken: m.LockToken}, nil)
			if sbErr, ok := errors.AsType[*azservicebus.Error](err); err != nil && (!ok || sbErr.Code != azservicebus.CodeLockLost) {
				failed = err
			}
		}
		err = errors.Join(failed, r.Close(ctx))
	}
	if err != nil && d.log != nil {
		d.log.Warnf("Service Bus subscription %s: sending back the %d messages still held at shutdown failed (%v): they are delivered again once their locks end",
			d.entity, len(held), err)
	}
}
