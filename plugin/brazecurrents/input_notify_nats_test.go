package brazecurrents

import (
	"context"
	"testing"
	"time"

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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := brokerNotified(t, ctx, "nats://NOTICES?consumer=currents", n.Publish)
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
