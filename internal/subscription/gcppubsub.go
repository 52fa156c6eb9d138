package subscription

import (
	"context"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	raw "cloud.google.com/go/pubsub/apiv1"
	"cloud.google.com/go/pubsub/apiv1/pubsubpb"
	"gocloud.dev/pubsub"
	"google.golang.org/grpc/status"
)

// pubsubLeases extends the ack deadline of what a gcppubsub subscription
// (gocloud's unary Pull driver) received: ModifyAckDeadline, 2,500 ack IDs
// a call.
type pubsubLeases struct {
	client *raw.SubscriberClient
	path   string // projects/<project>/subscriptions/<name>
}

// pubsubLeasesOf is sub's pubsubLeases if it is a gcppubsub subscription
// (u its URL).
func pubsubLeasesOf(sub *pubsub.Subscription, u *url.URL) (leaseService, bool) {
	var client *raw.SubscriberClient
	if u == nil || !sub.As(&client) {
		return nil, false
	}
	return pubsubLeases{client: client, path: subscriptionPath(u)}, true
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
