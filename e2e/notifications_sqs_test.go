package e2e

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// The AWS deployment end to end: Currents' files in S3 (the S3 server in a
// process of its own), S3's object-created notifications in an SQS queue
// whose visibility timeout is 10 s (the emulator, fauxqs; the input
// extends a message once held 3 to 6 s), and
// config/currents_notifications_to_segment.yaml. Segment answers 503 for
// longer than that timeout (13 s): no notification comes back meanwhile
// (those fetched ahead of the input neither), then every event arrives
// once, every notification is deleted, and the events without a user are
// skipped (not in the dead letter file). Before the input extended the visibility
// timeout, every notification held came back when it ran out (the test saw
// the first after 4.6 s of outage with a 5 s timeout), and its object was
// read again (400 duplicates).
func TestNotificationsFromS3OverSQS(t *testing.T) {
	parallelWaiting(t)
	r := newFaultRig(t, 1, 100, 93)
	sqs := queues.StartSQS(t)
	queue := sqs.CreateQueue(t, "currents-created", map[string]string{"VisibilityTimeout": "10"})
	for _, w := range r.written {
		sqs.Send(t, "currents-created", []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",`+
			`"awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"`+r.bucket.Name+`"},`+
			`"object":{"key":"`+url.QueryEscape(w.Key)+`"}}}]}`), nil)
	}
	r.notificationsThroughOutage(queue, sqs.Env(), func() string {
		for _, m := range sqs.Messages(t, "currents-created") {
			// Delivered, and visible again or due: its visibility timeout ran
			// out (the emulator moves messages back lazily).
			if m.Received > 1 || m.Received == 1 && m.VisibleAt.Before(time.Now()) {
				return fmt.Sprintf("delivered %d times", m.Received)
			}
		}
		return ""
	}, func() bool {
		visible, inFlight := sqs.Count(t, "currents-created")
		return visible == 0 && inFlight == 0
	})
}
