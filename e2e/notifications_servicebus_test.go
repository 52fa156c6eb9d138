package e2e

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// The Azure deployment end to end: Currents' files in Blob Storage
// (Azurite), Event Grid's BlobCreated events in a Service Bus subscription
// whose lock lasts 6 s (the fake, tests/queues), and
// config/currents_notifications_to_segment.yaml. Segment answers 503 for
// over two lock durations (13 s): no notification comes back meanwhile (the
// input renews the locks it holds), then every event arrives once, every
// notification is completed, and the events without a user are in the dead
// letter file. Before the input renewed locks, every notification held came
// back when its lock ended, and its object was read again.
func TestNotificationsFromBlobStorageOverServiceBus(t *testing.T) {
	t.Parallel()
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
	r.srv.Outage503(true)
	env := append(r.env(), "CURRENTS_NOTIFICATIONS="+sb.SubscriptionURL("currents-created", "connect"))
	for k, v := range sb.Env() {
		env = append(env, k+"="+v)
	}
	p := startConnect(t, repoRoot, env, r.events, append(append([]string{"run", "--log.level", "debug"}, quickRetries...), notificationsConfig)...)
	p.waitLines(1, 30*time.Second, "Segment request failed", "503 Service Unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outage := time.Now()
	queues.Eventually(t, ctx, "more than two lock durations of outage", func() bool {
		for _, m := range sb.Messages(t, "currents-created", "connect") {
			if m.DeliveryCount > 0 {
				t.Fatalf("a notification came back while held (%+v) after %v of outage", m, time.Since(outage))
			}
		}
		return time.Since(outage) > 13*time.Second
	})
	r.endOutageDeliveredOnce()
	queues.Eventually(t, ctx, "every notification completed", func() bool {
		return len(sb.Messages(t, "currents-created", "connect")) == 0
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(30 * time.Second)
	checkDeadLetters(t, r.srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), r.want, r.noUser, true)
	t.Logf("%d objects, %d events delivered after %v of outage, no duplicates", len(r.written), len(r.want), time.Since(outage).Round(time.Second))
}
