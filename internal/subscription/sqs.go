package subscription

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/awsqueue"
	"github.com/currents-connect/currents-connect/internal/driverlog"
)

// sqsLeases extends the visibility timeout of what an awssqs subscription
// received: ChangeMessageVisibilityBatch, 10 receipt handles a call.
type sqsLeases struct {
	client   *sqs.Client
	queueURL string
}

// openSQS opens the awssqs subscription at u, which keeps every message
// from redelivery from the moment SQS delivered it (gocloud fetches ahead
// of the input) until it is settled, and sends back at shutdown what is
// left, fetched ahead or held.
func openSQS(ctx context.Context, u *url.URL) (*Subscription, error) {
	var l atomic.Pointer[leases]
	sub, err := awsqueue.OpenSubscription(ctx, u, func(handles []string) {
		if held := l.Load(); held != nil {
			held.hold(handles, leasePeriod)
		}
	})
	if err != nil {
		return nil, err
	}
	var client *sqs.Client
	if !sub.As(&client) {
		_ = sub.Shutdown(ctx)
		return nil, errors.New("the awssqs driver gave no SQS client")
	}
	l.Store(startLeases(sqsLeases{client: client, queueURL: awsqueue.QueueURL(u)}, driverlog.From(ctx)))
	return &Subscription{Subscription: sub, leases: l.Load()}, nil
}

func (s sqsLeases) leaseID(m *pubsub.Message) (string, bool) {
	var sm sqstypes.Message
	if !m.As(&sm) || sm.ReceiptHandle == nil {
		return "", false
	}
	return *sm.ReceiptHandle, true
}

func (s sqsLeases) modify(ctx context.Context, handles []string, d time.Duration) error {
	entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(handles))
	for i, h := range handles {
		entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
			ReceiptHandle: aws.String(h), VisibilityTimeout: int32(d / time.Second)}
	}
	out, err := s.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String(s.queueURL), Entries: entries})
	if err != nil {
		return err
	}
	if len(out.Failed) == 0 {
		return nil
	}
	// A handle gone stale (the message came back, or was deleted since)
	// fails alone; the first failure tells the kind.
	refused := &sqsRefused{GenericAPIError: smithy.GenericAPIError{Code: aws.ToString(out.Failed[0].Code),
		Message: fmt.Sprintf("%d of %d refused: %s", len(out.Failed), len(handles), aws.ToString(out.Failed[0].Message))}}
	for _, f := range out.Failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(handles) {
			refused.handles = append(refused.handles, handles[i])
		}
	}
	return refused
}

// sqsRefused is a ChangeMessageVisibilityBatch that refused some handles.
type sqsRefused struct {
	smithy.GenericAPIError
	handles []string
}

func (r *sqsRefused) refused() []string { return r.handles }

func (sqsLeases) maxIDs() int { return 10 }

func (sqsLeases) failure(err error) string {
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		return ae.ErrorCode()
	}
	return "other"
}

func (s sqsLeases) name() (queue, timer string) {
	return "SQS queue " + s.queueURL, "visibility timeout"
}
