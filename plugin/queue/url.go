package queue

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	// The drivers compiled in: each registers its URL schemes with
	// gocloud.dev/pubsub. schemes below must name exactly theirs.
	_ "gocloud.dev/pubsub/awssnssqs"
	_ "gocloud.dev/pubsub/azuresb"
	_ "gocloud.dev/pubsub/gcppubsub"
	_ "gocloud.dev/pubsub/gcppubsubv2"
	_ "gocloud.dev/pubsub/mempubsub"
	_ "gocloud.dev/pubsub/rabbitpubsub"

	"github.com/currents-connect/currents-connect/internal/redact"
	"github.com/currents-connect/currents-connect/internal/subscription"
)

// A scheme compiled in, and whether it names topics only.
type scheme struct {
	name, service string
	topicOnly     bool
}

var schemes = []scheme{
	{"awssqs", "Amazon SQS", false},
	{"awssns", "Amazon SNS (topics only: subscribe an SQS queue to it to read)", true},
	{"gcppubsubv2", "Google Cloud Pub/Sub", false},
	{"gcppubsub", "Google Cloud Pub/Sub, through the older client library", false},
	{"azuresb", "Azure Service Bus", false},
	{"rabbit", "RabbitMQ (the server from `RABBIT_SERVER_URL`)", false},
	{"nats", "NATS JetStream (the server from `NATS_SERVER_URL`)", false},
	{"mem", "in-process topics and subscriptions, for tests", false},
}

// schemesDoc is the list of schemes for the specs' descriptions.
func schemesDoc(topics bool) string {
	var b strings.Builder
	for _, s := range schemes {
		if s.topicOnly && !topics {
			continue
		}
		fmt.Fprintf(&b, "- `%s://`: %s\n", s.name, s.service)
	}
	return b.String()
}

func schemeNames(topics bool) []string {
	var names []string
	for _, s := range schemes {
		if !s.topicOnly || topics {
			names = append(names, s.name)
		}
	}
	return names
}

// queueURL is the `url` field checked against the schemes compiled in.
type queueURL struct {
	raw      string
	redacted string // for logs and errors
}

// parseURL checks raw (the field named field) and hides its secrets.
// topics says whether topic-only schemes are allowed.
func parseURL(field, raw string, topics bool) (*queueURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole URL: the field and the reason only.
		return nil, redact.ParseError("field "+field, err)
	}
	q := &queueURL{raw: raw}
	q.redacted, _ = subscription.ShownURL(u)
	names := schemeNames(topics)
	if !slices.Contains(names, u.Scheme) {
		return nil, fmt.Errorf("field %s: scheme %q of %s is not compiled in; the schemes available are %s://",
			field, u.Scheme, q.redacted, strings.Join(names, "://, "))
	}
	return q, nil
}

// scrub rewrites a driver's error so that it shows neither the URL's
// secrets nor the raw URL, named as named names it.
func (q *queueURL) scrub(what string, err error) error {
	return q.named(what, subscription.HideURL(q.raw, err))
}

// named is err, whose text hides the URL's secrets already, after what and
// the redacted URL, unless it names the URL: gocloud's open errors do, with
// the query encoded again (its parameters sorted), so its scheme, host and
// path are looked for.
func (q *queueURL) named(what string, err error) error {
	if base, _, _ := strings.Cut(q.redacted, "?"); strings.Contains(err.Error(), base) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s %s: %w", what, q.redacted, err)
}
