package brazecurrents

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/queues"

	// The nats:// driver, as the binary has it.
	_ "github.com/currents-connect/currents-connect/plugin/queue"
)

// Notifications from NATS JetStream, as MinIO publishes them to it, are read
// and acknowledged like the others (before, MinIO's eventSource made each a
// malformed notification, acknowledged unread). The driver fetches one when
// the input asks: with one reader, two are delivered (one read, one
// waiting) and no more.
func TestNotificationsOverNATS(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "NOTICES", "notices", "", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := brokerNotified(t, ctx, "nats://NOTICES?consumer=currents", asMinIO(n.Publish))
	// Nothing is read yet: the input took its two and no more.
	pollUntil(t, "the input takes notifications", func() bool { return n.Deliveries(t, "NOTICES", "currents") >= 2 })
	if d := n.Deliveries(t, "NOTICES", "currents"); d != 2 {
		t.Fatalf("%d notifications delivered with one reader, want 2", d)
	}
	readAllThenClose(t, ctx, in)
	// Every notification acknowledged, none delivered twice.
	pollUntil(t, "every notification acknowledged", func() bool {
		c := n.ConsumerInfo(t, "NOTICES", "currents")
		return c.NumAckPending == 0 && c.NumPending == 0
	})
	if d := n.Deliveries(t, "NOTICES", "currents"); d != 10 {
		t.Fatalf("%d deliveries of 10 notifications", d)
	}
}

// asMinIO publishes through publish, instead of the GCS notification it is
// given, MinIO's notification of the same object: S3's records from its own
// eventSource, the event name prefixed with s3:, the key escaped as a query.
func asMinIO(publish func(t testing.TB, to string, data []byte, attrs map[string]string)) func(t testing.TB, to string, data []byte, attrs map[string]string) {
	return func(t testing.TB, to string, _ []byte, attrs map[string]string) {
		bucket, key := attrs["bucketId"], attrs["objectId"]
		publish(t, to, []byte(`{"EventName":"s3:ObjectCreated:Put","Key":"`+bucket+`/`+key+`","Records":[{"eventVersion":"2.0",`+
			`"eventSource":"minio:s3","eventName":"s3:ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"`+bucket+`"},`+
			`"object":{"key":"`+url.QueryEscape(key)+`","size":1024}}}]}`), nil)
	}
}
