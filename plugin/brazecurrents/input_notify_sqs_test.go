package brazecurrents

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// Notifications from Amazon SQS, as S3 sends them (S3's event JSON, keys
// URL-encoded), to the queue directly and through an SNS topic (SNS's
// envelope), and as an EventBridge rule does (its event, keys as they are),
// beside the test event S3 sends when notifications are set up:
// every event of the ten objects is read once, and the queue is empty once
// the input closed (each notification deleted, the test event too).
func TestNotificationsOverSQS(t *testing.T) {
	s := queues.StartSQS(t)
	s.SetEnv(t)
	queue := s.CreateQueue(t, "notices", nil)
	s.CreateTopic(t, "currents-objects", false, "notices")
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 10, RecordsPerFile: 5, Seed: 7,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(t, "notices", []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-03T10:00:00.000Z","Bucket":"acme-currents"}`), nil)
	for i, w := range written {
		notice := []byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",` +
			`"eventTime":"2026-12-03T10:00:00.000Z","eventName":"ObjectCreated:Put",` +
			`"s3":{"s3SchemaVersion":"1.0","bucket":{"name":"acme-currents","arn":"arn:aws:s3:::acme-currents"},` +
			`"object":{"key":"` + url.QueryEscape(w.Key) + `","size":1024}}}]}`)
		switch i % 3 {
		case 0:
			s.Send(t, "notices", notice, nil)
		case 1:
			s.Publish(t, "currents-objects", notice)
		default:
			// EventBridge's rule to the queue: its own shape, the key as it is.
			s.Send(t, "notices", []byte(`{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103",`+
				`"detail-type":"Object Created","source":"aws.s3","account":"111122223333",`+
				`"time":"2026-12-03T10:00:00Z","region":"us-east-1","resources":["arn:aws:s3:::acme-currents"],`+
				`"detail":{"version":"0","bucket":{"name":"acme-currents"},"object":{"key":"`+w.Key+`","size":1024},`+
				`"reason":"PutObject"}}`), nil)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: "+queue+"\nmax_parallel_objects: 1\n", service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	readAllThenClose(t, ctx, in)
	queues.Eventually(t, ctx, "every notification deleted", func() bool {
		visible, inFlight := s.Count(t, "notices")
		return visible == 0 && inFlight == 0
	})
}
