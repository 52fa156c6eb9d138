// Package awsqueue opens SQS subscriptions and SQS and SNS topics as
// gocloud's awssnssqs URL opener does, except that requests end after a
// while: the AWS SDK's default HTTP client has no timeout, so a connection
// gone silent (a NAT or load balancer that forgot it, a hung proxy) held a
// receive, and with it the subscription, or a send, and with it the
// output, for ever; and that a topic sends each message in a request of its
// own (OpenTopic).
package awsqueue

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/awssnssqs"
	"gocloud.dev/pubsub/batcher"
)

var (
	// RequestTimeout bounds a request beyond a long poll's wait. A
	// variable for the tests.
	RequestTimeout = time.Minute
	// maxWait is SQS's longest long poll.
	maxWait = 20 * time.Second
)

// Handles reports whether scheme is one this package opens.
func Handles(scheme string) bool {
	return scheme == awssnssqs.SQSScheme || scheme == awssnssqs.SNSScheme
}

// OpenSubscription opens the awssqs subscription at u. Its query takes
// gocloud's parameters (raw, snstopicarn, nacklazy, waittime) and those of
// gocloud.dev/aws.V2ConfigFromURLParams (region, endpoint...). received,
// if not nil, is called with the receipt handles of the messages each
// ReceiveMessage brought, as it brings them: gocloud fetches ahead of its
// caller, and those messages' visibility timeouts run from then.
func OpenSubscription(ctx context.Context, u *url.URL, received func(handles []string)) (*pubsub.Subscription, error) {
	if u.Scheme != awssnssqs.SQSScheme {
		return nil, fmt.Errorf("open subscription %s: only %s:// subscriptions exist", u.Redacted(), awssnssqs.SQSScheme)
	}
	q := u.Query()
	// gocloud's default wait is 0: a short poll, then 250 ms of sleep when
	// it found nothing. A long poll (waittime up to 20s) costs fewer
	// requests, but one in flight at shutdown can take a message the input
	// sends back, which then waits out the visibility timeout.
	opts := awssnssqs.SubscriptionOptions{SNSTopicARN: q.Get("snstopicarn")}
	var err error
	if v := q.Get("raw"); v != "" {
		if opts.Raw, err = strconv.ParseBool(v); err != nil {
			return nil, paramError(u, "raw", err)
		}
	}
	if v := q.Get("nacklazy"); v != "" {
		if opts.NackLazy, err = strconv.ParseBool(v); err != nil {
			return nil, paramError(u, "nacklazy", err)
		}
	}
	if v := q.Get("waittime"); v != "" {
		if opts.WaitTime, err = parseWait(v); err != nil {
			return nil, paramError(u, "waittime", err)
		}
	}
	for _, name := range []string{"raw", "snstopicarn", "nacklazy", "waittime"} {
		q.Del(name)
	}
	cfg, err := config(ctx, q, opts.WaitTime+RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", u.Redacted(), err)
	}
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if received != nil {
			o.APIOptions = append(o.APIOptions, reportReceived(received))
		}
	})
	return awssnssqs.OpenSubscriptionV2(ctx, client, QueueURL(u), &opts), nil
}

// reportReceived adds to a client's calls a step that hands the receipt
// handles of what a ReceiveMessage brought to received.
func reportReceived(received func(handles []string)) func(*middleware.Stack) error {
	step := middleware.InitializeMiddlewareFunc("ReportReceived", func(ctx context.Context, in middleware.InitializeInput,
		next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		if r, ok := out.Result.(*sqs.ReceiveMessageOutput); ok && err == nil && len(r.Messages) > 0 {
			handles := make([]string, 0, len(r.Messages))
			for _, m := range r.Messages {
				if m.ReceiptHandle != nil {
					handles = append(handles, *m.ReceiptHandle)
				}
			}
			received(handles)
		}
		return out, md, err
	})
	return func(stack *middleware.Stack) error { return stack.Initialize.Add(step, middleware.After) }
}

func paramError(u *url.URL, name string, err error) error {
	return fmt.Errorf("open subscription %s: query parameter %s: %w", u.Redacted(), name, err)
}

// parseWait reads a long poll's wait: SQS takes whole seconds up to 20.
func parseWait(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxWait || d%time.Second != 0 {
		return 0, fmt.Errorf("%s is not a whole number of seconds from 0s to %v", v, maxWait)
	}
	return d, nil
}

// OpenTopic opens the awssqs or awssns topic at u.
func OpenTopic(ctx context.Context, u *url.URL) (*pubsub.Topic, error) {
	cfg, err := config(ctx, u.Query(), RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("open topic %s: %w", u.Redacted(), err)
	}
	// gocloud groups sends of up to 10 into one request once its 100
	// handlers are busy, and fails the whole request when SQS or SNS refuses
	// one entry (or the group passes the request's byte limit): the others,
	// stored, would be reported failed and sent again. One message a request
	// keeps each failure its own; below 100 sends at once nothing changes.
	opts := awssnssqs.TopicOptions{BatcherOptions: batcher.Options{MaxBatchSize: 1}}
	switch u.Scheme {
	case awssnssqs.SNSScheme:
		// The ARN is the path: ARNs hold colons, which a host cannot.
		arn := strings.TrimPrefix(path.Join(u.Host, u.Path), "/")
		return awssnssqs.OpenSNSTopicV2(ctx, sns.NewFromConfig(cfg), arn, &opts), nil
	case awssnssqs.SQSScheme:
		return awssnssqs.OpenSQSTopicV2(ctx, sqs.NewFromConfig(cfg), QueueURL(u), &opts), nil
	}
	return nil, fmt.Errorf("open topic %s: not an %s:// or %s:// URL", u.Redacted(), awssnssqs.SQSScheme, awssnssqs.SNSScheme)
}

// config is the AWS configuration q's parameters name (region, endpoint...),
// with an HTTP client whose requests end after timeout.
func config(ctx context.Context, q url.Values, timeout time.Duration) (aws.Config, error) {
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout)
	return cfg, err
}

// QueueURL is the SQS queue an awssqs:// URL names, as gocloud's opener
// makes it.
func QueueURL(u *url.URL) string { return "https://" + path.Join(u.Host, u.Path) }
