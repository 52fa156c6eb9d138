package subscription

import (
	"context"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	raw "cloud.google.com/go/pubsub/apiv1"
	"cloud.google.com/go/pubsub/apiv1/pubsubpb"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gocloud's gcppubsub driver (unary Pull) never extends the ack deadline of
// what it received: a message held past the subscription's ack deadline
// (10 to 600 s), for instance while Segment was down and the output
// retried, was delivered again while still in the pipeline, a duplicate,
// and with many held a storm of them. leases extends them instead, as
// gcppubsubv2's client does its own.

var (
	// leaseExtension is the ack deadline each extension sets.
	leaseExtension = 60 * time.Second
	// leasePeriod is how often the messages held are extended: well under
	// the shortest ack deadline Pub/Sub allows (10 s), since a message may
	// have waited in gocloud's buffer before it was received. A variable
	// for the tests.
	leasePeriod = 3 * time.Second
)

const (
	// maxAckIDs is the most ack IDs one ModifyAckDeadline takes.
	maxAckIDs = 2500
	// extendTimeout bounds one ModifyAckDeadline.
	extendTimeout = 10 * time.Second
)

// leases extends the ack deadline of the messages a gcppubsub subscription
// received and no one settled yet.
type leases struct {
	client *raw.SubscriberClient
	path   string          // projects/<project>/subscriptions/<name>
	log    *service.Logger // may be nil

	mu     sync.Mutex
	held   map[string]struct{} // by ack ID
	logged map[codes.Code]bool // the kinds of failure logged already
	// sending are the ack IDs of the extension on its way, and renack
	// those of them nacked meanwhile: the extension may reach the server
	// after the nack's zero deadline and hold them back for
	// leaseExtension, so they are nacked again after it.
	sending map[string]bool
	renack  []string

	stop     context.CancelFunc
	stopped  chan struct{}
	stopOnce sync.Once
}

// extendLeases starts extending the messages sub receives if it is a
// gcppubsub subscription (u its URL), else is nil.
func extendLeases(sub *pubsub.Subscription, u *url.URL, log *service.Logger) *leases {
	var client *raw.SubscriberClient
	if u == nil || !sub.As(&client) {
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &leases{client: client, path: subscriptionPath(u), log: log, held: map[string]struct{}{},
		logged: map[codes.Code]bool{}, stop: stop, stopped: make(chan struct{})}
	go l.run(ctx)
	return l
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

func (l *leases) received(m *pubsub.Message) {
	var rm *pubsubpb.ReceivedMessage
	if !m.As(&rm) {
		return
	}
	l.mu.Lock()
	l.held[rm.AckId] = struct{}{}
	l.mu.Unlock()
}

// settled stops extending m, before it is acked or nacked.
func (l *leases) settled(m *pubsub.Message, ack bool) {
	var rm *pubsubpb.ReceivedMessage
	if m.As(&rm) {
		l.mu.Lock()
		delete(l.held, rm.AckId)
		if !ack && l.sending[rm.AckId] {
			l.renack = append(l.renack, rm.AckId)
		}
		l.mu.Unlock()
	}
}

func (l *leases) run(ctx context.Context) {
	defer close(l.stopped)
	tick := time.NewTicker(leasePeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.extend(ctx)
	}
}

// extend sets the deadline of every message held to leaseExtension from
// now, maxAckIDs a call.
func (l *leases) extend(ctx context.Context) {
	l.mu.Lock()
	ids := slices.Collect(maps.Keys(l.held))
	l.mu.Unlock()
	for batch := range slices.Chunk(ids, maxAckIDs) {
		l.mu.Lock()
		l.sending = make(map[string]bool, len(batch))
		live := batch[:0] // without those settled since the snapshot
		for _, id := range batch {
			if _, ok := l.held[id]; ok {
				l.sending[id] = true
				live = append(live, id)
			}
		}
		l.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		if err := l.modify(ctx, live, leaseExtension); err != nil && ctx.Err() == nil {
			l.failed(len(live), err)
		}
		l.mu.Lock()
		renack := l.renack
		l.sending, l.renack = nil, nil
		l.mu.Unlock()
		if len(renack) > 0 {
			// Failing, they come back after leaseExtension: late, not lost.
			_ = l.modify(ctx, renack, 0)
		}
	}
}

// modify sets the deadline of the messages of ackIDs to d from now.
func (l *leases) modify(ctx context.Context, ackIDs []string, d time.Duration) error {
	call, cancel := context.WithTimeout(ctx, extendTimeout)
	defer cancel()
	return l.client.ModifyAckDeadline(call, &pubsubpb.ModifyAckDeadlineRequest{
		Subscription: l.path, AckIds: ackIDs, AckDeadlineSeconds: int32(d / time.Second),
	})
}

// failed logs a failed extension, once for each kind of error: the
// messages come again if it keeps failing past their deadline.
func (l *leases) failed(n int, err error) {
	code := status.Code(err)
	l.mu.Lock()
	seen := l.logged[code]
	l.logged[code] = true
	l.mu.Unlock()
	if seen || l.log == nil {
		return
	}
	l.log.Warnf("Pub/Sub subscription %s: extending the ack deadline of the messages held in the pipeline (%d) failed (%v): "+
		"unless a later extension succeeds in time, they are delivered again while still held. "+
		"Logged once for each kind of error", l.path, n, err)
}

// close stops the extensions, waits for the one under way, and sends back
// what is still held: Connect closes an input once the messages in flight
// were settled or its shutdown ran out of time, so nothing will settle
// those. They are delivered again at once, not up to leaseExtension later.
func (l *leases) close() {
	l.stopOnce.Do(l.stop)
	<-l.stopped
	l.mu.Lock()
	ids := slices.Collect(maps.Keys(l.held))
	clear(l.held)
	l.mu.Unlock()
	for batch := range slices.Chunk(ids, maxAckIDs) {
		if err := l.modify(context.Background(), batch, 0); err != nil && l.log != nil {
			l.log.Warnf("Pub/Sub subscription %s: sending back %d messages still held at shutdown failed (%v): "+
				"they are delivered again within %v", l.path, len(batch), err, leaseExtension)
		}
	}
}
