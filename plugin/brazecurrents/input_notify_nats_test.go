package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"

	// The nats:// driver, as the binary has it.
	_ "github.com/currents-connect/currents-connect/plugin/queue"
)

// Notifications from NATS JetStream (a store such as MinIO can publish to
// it) are read and acknowledged like the others. The driver fetches one when
// the input asks: with one reader, two are delivered (one read, one
// waiting) and no more.
func TestNotificationsOverNATS(t *testing.T) {
	n := queues.StartNATS(t)
	t.Setenv("NATS_SERVER_URL", n.URL())
	n.CreateStream(t, "NOTICES", "notices", "", 0)
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 10, RecordsPerFile: 5, Seed: 5,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range written {
		n.Publish(t, "notices", []byte(`{"kind":"storage#object"}`),
			map[string]string{"bucketId": "acme-currents", "objectId": w.Key, "eventType": "OBJECT_FINALIZE"})
	}
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: nats://NOTICES?consumer=currents\nmax_parallel_objects: 1\n", service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing is read yet: the input took its two and no more.
	pollUntil(t, "the input takes notifications", func() bool { return n.Deliveries(t, "NOTICES", "currents") >= 2 })
	if d := n.Deliveries(t, "NOTICES", "currents"); d != 2 {
		t.Fatalf("%d notifications delivered with one reader, want 2", d)
	}
	ids := map[string]int{}
	for len(ids) < 50 {
		b, ack, err := in.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of 50 events: %v", len(ids), err)
		}
		for _, m := range b {
			v, _ := m.AsStructured()
			ids[v.(map[string]any)["id"].(string)]++
		}
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Every notification acknowledged, none delivered twice.
	pollUntil(t, "every notification acknowledged", func() bool {
		c := n.ConsumerInfo(t, "NOTICES", "currents")
		return c.NumAckPending == 0 && c.NumPending == 0
	})
	if d := n.Deliveries(t, "NOTICES", "currents"); d != len(written) {
		t.Fatalf("%d deliveries of %d notifications", d, len(written))
	}
}
