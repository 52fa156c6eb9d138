package subscription

import (
	"context"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	raw "cloud.google.com/go/pubsub/apiv1"
	"cloud.google.com/go/pubsub/apiv1/pubsubpb"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/batcher"
	"gocloud.dev/pubsub/driver"
	"google.golang.org/grpc/status"

	"github.com/currents-connect/currents-connect/internal/driverlog"
)

// openPubSub opens the gcppubsub subscription at u, whose messages are
// extended from the moment a Pull returned them until they are settled, and
// sent back at shutdown if still held, received or not. gocloud's gcppubsub
// driver pulls ahead of the input (batches sized for about 2 s of its
// receives) and tells no one what it pulled: the messages waiting in its
// buffer were not extended while the pipeline was full, and at shutdown
// they were dropped unsettled, to wait out the subscription's ack deadline
// (10 s by default, up to 10 minutes) before another consumer got them.
// pullDriver does the driver's work on the client gocloud's URL opener made
// (the opener dials, with the emulator or credentials, and checks the URL),
// and reports each Pull's ack IDs as they come.
func openPubSub(ctx context.Context, u *url.URL) (*Subscription, error) {
	client, err := openedClient[*raw.SubscriberClient](ctx, u)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	d := &pullDriver{sub: pubsubLeases{client: client, path: subscriptionPath(u)}, maxBatch: 1000}
	if v := q.Get("max_recv_batch_size"); v != "" {
		d.maxBatch, _ = strconv.Atoi(v) // checked by the opener
	}
	if v := q.Get("nacklazy"); v != "" {
		d.nackLazy, _ = strconv.ParseBool(v)
	}
	l := startLeases(d.sub, driverlog.From(ctx))
	d.fetched = func(ids []string) { l.hold(ids, leasePeriod) }
	// gocloud's batching for gcppubsub.
	sub := pubsub.NewSubscription(d, &batcher.Options{MaxBatchSize: d.maxBatch, MaxHandlers: 10},
		&batcher.Options{MaxBatchSize: 1000, MaxHandlers: 2})
	return &Subscription{Subscription: sub, leases: l}, nil
}

// pullDriver pulls with unary Pull calls, acknowledges and nacks
// (ModifyAckDeadline to 0) as gocloud's gcppubsub driver does, and reports
// what each Pull returned to fetched.
type pullDriver struct {
	grpcErrors
	sub      pubsubLeases // the client and the subscription, which the leases extend
	maxBatch int
	nackLazy bool // a nack leaves the message to its deadline
	fetched  func(ackIDs []string)
}

func (d *pullDriver) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	// Asking for a whole batch, gocloud makes several calls at once: none
	// waits for messages (gocloud's rule).
	now := max == d.maxBatch
	resp, err := d.sub.client.Pull(ctx, &pubsubpb.PullRequest{Subscription: d.sub.path, ReturnImmediately: now, MaxMessages: int32(max)})
	if err != nil {
		return nil, err
	}
	if len(resp.ReceivedMessages) == 0 {
		if now {
			time.Sleep(100 * time.Millisecond) // gocloud's, not to spin
		}
		return nil, nil
	}
	ids := make([]string, len(resp.ReceivedMessages))
	dms := make([]*driver.Message, len(resp.ReceivedMessages))
	for i, rm := range resp.ReceivedMessages {
		ids[i] = rm.AckId
		dms[i] = &driver.Message{LoggableID: rm.Message.GetMessageId(), Body: rm.Message.GetData(),
			Metadata: rm.Message.GetAttributes(), AckID: rm.AckId, AsFunc: pulledAs(rm)}
	}
	d.fetched(ids)
	return dms, nil
}

// pulledAs gives the message's protos, as gocloud's driver does.
func pulledAs(rm *pubsubpb.ReceivedMessage) func(any) bool {
	return func(i any) bool {
		switch p := i.(type) {
		case **pubsubpb.ReceivedMessage:
			*p = rm
		case **pubsubpb.PubsubMessage:
			*p = rm.Message
		default:
			return false
		}
		return true
	}
}

func (d *pullDriver) SendAcks(ctx context.Context, ids []driver.AckID) error {
	return d.sub.client.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: d.sub.path, AckIds: ackIDs(ids)})
}

func (d *pullDriver) CanNack() bool { return true }

func (d *pullDriver) SendNacks(ctx context.Context, ids []driver.AckID) error {
	if d.nackLazy {
		return nil
	}
	return d.sub.modify(ctx, ackIDs(ids), 0)
}

func ackIDs(ids []driver.AckID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.(string)
	}
	return s
}

func (d *pullDriver) As(i any) bool {
	p, ok := i.(**raw.SubscriberClient)
	if ok {
		*p = d.sub.client
	}
	return ok
}

// Close closes nothing: the subscription's Shutdown sends back what is
// still held (leases.close), pulled ahead or not settled.
func (d *pullDriver) Close() error { return nil }

// pubsubLeases extends the ack deadline of what a gcppubsub subscription
// pulled: ModifyAckDeadline, 2,500 ack IDs a call.
type pubsubLeases struct {
	client *raw.SubscriberClient
	path   string // projects/<project>/subscriptions/<name>
}

var subscriptionPathRE = regexp.MustCompile("^projects/.+/subscriptions/.+$")

// subscriptionPath is the subscription that gocloud's gcppubsub URL opener
// opens for u: projects/<project>/subscriptions/<name>, or <project>/<name>.
func subscriptionPath(u *url.URL) string {
	if p := path.Join(u.Host, u.Path); subscriptionPathRE.MatchString(p) {
		return p
	}
	return "projects/" + u.Host + "/subscriptions/" + strings.TrimPrefix(u.Path, "/")
}

func (p pubsubLeases) leaseID(m *pubsub.Message) (string, bool) {
	var rm *pubsubpb.ReceivedMessage
	if !m.As(&rm) {
		return "", false
	}
	return rm.AckId, true
}

func (p pubsubLeases) modify(ctx context.Context, ackIDs []string, d time.Duration) error {
	return p.client.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
		Subscription: p.path, AckIds: ackIDs, AckDeadlineSeconds: int32(d / time.Second),
	})
}

func (pubsubLeases) maxIDs() int              { return 2500 }
func (pubsubLeases) failure(err error) string { return status.Code(err).String() }
func (p pubsubLeases) name() (queue, timer string) {
	return "Pub/Sub subscription " + p.path, "ack deadline"
}
