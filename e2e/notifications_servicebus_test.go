package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// The Azure deployment end to end: Currents' files in Blob Storage
// (Azurite), Event Grid's BlobCreated events in a Service Bus subscription
// whose lock lasts 6 s (the fake, tests/queues), and
// config/currents_notifications_to_segment.yaml. Segment answers 503 for
// over two lock durations (13 s): no notification comes back meanwhile (the
// input renews the locks it holds), then every event arrives once, every
// notification is completed, and the events without a user are skipped (not in
// the dead letter file). Before the input renewed locks, every notification held came
// back when its lock ended, and its object was read again.
func TestNotificationsFromBlobStorageOverServiceBus(t *testing.T) {
	parallelWaiting(t)
	r := newRigOn(t, buckets.StartAzurite(t), 1, 100, 94)
	sb := queues.StartServiceBus(t)
	sb.CreateSubscription(t, "currents-created", "connect", 6*time.Second, 0)
	for _, w := range r.written {
		event, err := json.Marshal([]map[string]any{{"eventType": "Microsoft.Storage.BlobCreated",
			"subject": "/blobServices/default/containers/" + r.bucket.Name + "/blobs/" + w.Key,
			"data":    map[string]any{"api": "PutBlob"}}})
		if err != nil {
			t.Fatal(err)
		}
		sb.Send(t, "currents-created", event)
	}
	r.notificationsThroughOutage(sb.SubscriptionURL("currents-created", "connect"), sb.Env(), func() string {
		for _, m := range sb.Messages(t, "currents-created", "connect") {
			if m.DeliveryCount > 0 {
				return fmt.Sprintf("%+v", m)
			}
		}
		return ""
	}, func() bool {
		return len(sb.Messages(t, "currents-created", "connect")) == 0
	})
}
