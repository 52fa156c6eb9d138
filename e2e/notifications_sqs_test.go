package e2e

import (
	"context"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
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
// in the dead letter file. Before the input extended the visibility
// timeout, every notification held came back when it ran out (the test saw
// the first after 4.6 s of outage with a 5 s timeout), and its object was
// read again (400 duplicates).
func TestNotificationsFromS3OverSQS(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t, 1, 100, 93)
	sqs := queues.StartSQS(t)
	queue := sqs.CreateQueue(t, "currents-created", map[string]string{"VisibilityTimeout": "10"})
	for _, w := range r.written {
		sqs.Send(t, "currents-created", []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3",`+
			`"awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"`+r.bucket.Name+`"},`+
			`"object":{"key":"`+url.QueryEscape(w.Key)+`"}}}]}`), nil)
	}
	r.srv.Outage503(true)
	env := append(r.env(), "CURRENTS_NOTIFICATIONS="+queue)
	for k, v := range sqs.Env() {
		env = append(env, k+"="+v)
	}
	p := startConnect(t, repoRoot, env, r.events, append(append([]string{"run", "--log.level", "debug"}, quickRetries...), notificationsConfig)...)
	p.waitLines(1, 30*time.Second, "Segment request failed", "503 Service Unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outage := time.Now()
	queues.Eventually(t, ctx, "more than a visibility timeout of outage", func() bool {
		for _, m := range sqs.Messages(t, "currents-created") {
			// Delivered, and visible again or due: its visibility timeout ran
			// out (the emulator moves messages back lazily).
			if m.Received > 1 || m.Received == 1 && m.VisibleAt.Before(time.Now()) {
				t.Fatalf("a notification came back while held (delivered %d times) after %v of outage", m.Received, time.Since(outage))
			}
		}
		return time.Since(outage) > 13*time.Second
	})
	r.endOutageDeliveredOnce()
	queues.Eventually(t, ctx, "every notification deleted", func() bool {
		visible, inFlight := sqs.Count(t, "currents-created")
		return visible == 0 && inFlight == 0
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(30 * time.Second)
	checkDeadLetters(t, r.srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), r.want, r.noUser, true)
	t.Logf("%d objects, %d events delivered after %v of outage, no duplicates", len(r.written), len(r.want), time.Since(outage).Round(time.Second))
}
