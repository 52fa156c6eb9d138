package subscription

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
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
	opened, err := pubsub.OpenSubscription(ctx, u.String())
	if err != nil {
		return nil, err
	}
	var r *azservicebus.Receiver
	if !opened.As(&r) {
		_ = opened.Shutdown(ctx)
		return nil, errors.New("azuresb: no Service Bus receiver")
	}
	// Its driver fetches only when received from, and closes nothing.
	if err := opened.Shutdown(ctx); err != nil {
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
	sub := pubsub.NewSubscription(d, recv, &batcher.Options{MaxBatchSize: 1, MaxHandlers: 100})
	return &Subscription{Subscription: sub, leases: l}, nil
}

// sbDriver receives in peek-lock mode, completes (ack) and abandons
// (nack) one message at a time, as gocloud's azuresb driver does.
type sbDriver struct {
	receiver *azservicebus.Receiver
	listen   time.Duration // how long a receive waits for messages
	fetched  func(*azservicebus.ReceivedMessage)
}

func (d *sbDriver) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	rctx, cancel := context.WithTimeout(ctx, d.listen)
	defer cancel()
	got, err := d.receiver.ReceiveMessages(rctx, max, nil)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		err = nil // nothing came within the listener timeout
	}
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
		err = errors.Join(err, d.receiver.CompleteMessage(ctx, id.(*azservicebus.ReceivedMessage), nil))
	}
	return err
}

func (d *sbDriver) CanNack() bool { return true }

func (d *sbDriver) SendNacks(ctx context.Context, ids []driver.AckID) error {
	var err error
	for _, id := range ids {
		err = errors.Join(err, d.receiver.AbandonMessage(ctx, id.(*azservicebus.ReceivedMessage), nil))
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

// Close closes the receiver: its locks stay until they end.
func (d *sbDriver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), extendTimeout)
	defer cancel()
	return d.receiver.Close(ctx)
}
