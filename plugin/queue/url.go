package queue

import (
	"fmt"
	"net/url"
	"regexp"
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

// secretParam matches query parameter names that may hold a secret: their
// values are never logged or put in errors.
var secretParam = regexp.MustCompile(`(?i)key|secret|token|password|passwd|sig|credential|connection`)

// queueURL is the `url` field checked against the schemes compiled in.
type queueURL struct {
	raw      string
	redacted string   // for logs and errors
	secrets  []string // values to scrub from the drivers' errors
}

// parseURL checks raw (the field named field) and hides its secrets.
// topics says whether topic-only schemes are allowed.
func parseURL(field, raw string, topics bool) (*queueURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole URL: name the field only.
		return nil, fmt.Errorf("field %s: not a URL", field)
	}
	q := &queueURL{raw: raw}
	// Each secret as written and as escaped: a driver may quote the URL
	// encoded again (the Rabbit subscription adds its prefetch_count).
	if p, ok := u.User.Password(); ok && p != "" {
		q.secrets = append(q.secrets, p, strings.TrimPrefix(url.UserPassword("", p).String(), ":"))
	}
	query := u.Query()
	for name, vals := range query {
		if !secretParam.MatchString(name) {
			continue
		}
		for i, v := range vals {
			if v != "" {
				q.secrets = append(q.secrets, v, url.QueryEscape(v))
				vals[i] = "xxxxx"
			}
		}
	}
	if u.Scheme == "rabbit" {
		// gocloud's Rabbit opener quotes RABBIT_SERVER_URL when it cannot
		// parse it.
		q.secrets = append(q.secrets, subscription.RabbitServerSecrets()...)
	}
	u.RawQuery = query.Encode()
	q.redacted = u.Redacted()
	names := schemeNames(topics)
	if !slices.Contains(names, u.Scheme) {
		return nil, fmt.Errorf("field %s: scheme %q of %s is not compiled in; the schemes available are %s://",
			field, u.Scheme, q.redacted, strings.Join(names, "://, "))
	}
	return q, nil
}

// scrub rewrites a driver's error so that it shows neither the URL's
// secrets nor the raw URL, and names the redacted URL.
func (q *queueURL) scrub(what string, err error) error {
	msg := subscription.HideSecrets(strings.ReplaceAll(err.Error(), q.raw, q.redacted), q.secrets)
	if strings.Contains(msg, q.redacted) { // gocloud's open errors name the URL
		return fmt.Errorf("%s: %w", what, scrubbed{msg, err})
	}
	return fmt.Errorf("%s %s: %w", what, q.redacted, scrubbed{msg, err})
}

// scrubbed shows the scrubbed text and keeps the original for errors.Is.
type scrubbed struct {
	msg string
	err error
}

func (s scrubbed) Error() string { return s.msg }
func (s scrubbed) Unwrap() error { return s.err }
