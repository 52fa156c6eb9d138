package brazecurrents

import (
	"context"
	"testing"
	"time"

	rawpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// Notifications over Pub/Sub: with every reader's object held, the client
// leases two notifications a reader and no more, the others left to the
// subscription's other consumers; unbounded, it leased up to 1000, each
// extended for up to an hour. The test server delivers the whole topic to
// the stream, ignoring the flow control a streaming pull asks for (the
// service honours it), so the client takes one more off the stream, held
// at its own flow control; the rest it never receives nor extends.
func TestNotificationsOverPubSubLeaseTwoAReader(t *testing.T) {
	const files, parallel = 20, 2
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, FilesPerType: files,
		RecordsPerFile: 5, Seed: 13}, "max_parallel_objects: 2")
	var rs *rawpubsub.Subscriber
	if !n.in.sub.As(&rs) {
		t.Fatal("not a Pub/Sub client subscription")
	}
	if got := rs.ReceiveSettings.MaxOutstandingMessages; got != 2*parallel {
		t.Fatalf("the client asks for up to %d notifications outstanding, with %d readers", got, parallel)
	}
	for _, w := range n.written {
		n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	}
	// Nothing is read: each reader holds an object, and the notifications
	// behind them wait. Once the server delivered them all to the stream,
	// the client's next extension of its leases shows all it took.
	pollUntil(t, "the server delivers every notification", func() bool {
		return n.ps.Deliveries(n.topic, []byte(gcsNoticeBody)) >= files
	})
	delivered := time.Now()
	pollUntil(t, "the client extends its leases", func() bool { return n.ps.ExtendedSince(n.topic, delivered) })
	const leased = 2*parallel + 1
	if got := n.ps.Leased(n.topic); got != leased {
		t.Fatalf("the client leased %d of %d notifications with %d readers holding their objects, want %d", got, files, parallel, leased)
	}
	// Read as they come, every object's notification is acknowledged.
	for _, w := range n.written {
		_, acks := n.read(len(w.Records))
		for _, ack := range acks {
			_ = ack(context.Background(), nil)
		}
	}
	for range files {
		if s := n.nextSettled(); !s.acked {
			t.Fatalf("%+v sent back", s)
		}
	}
}
