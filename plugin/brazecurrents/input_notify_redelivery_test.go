package brazecurrents

import (
	"context"
	"errors"
	"testing"
	"time"

	_ "gocloud.dev/pubsub/gcppubsub"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// gcsNoticeBody is the body publishGCS gives every notification.
const gcsNoticeBody = `{"kind":"storage#object"}`

// A notification the queue delivers again while its object is still being
// read (the read outlived the ack deadline or visibility timeout: a big
// object, a slow Segment) is not acknowledged before the object's events
// are. Acknowledging the copy removes the notification from the queue: when
// the read then fails, its nack finds nothing to send back and the object
// is never read again.
func TestNotificationRedeliveredWhileReadingIsKept(t *testing.T) {
	// The server refuses the input's extensions of the deadline, as an
	// unreachable service would: it passes, as SQS's visibility timeout
	// does, which the input does not extend.
	n := startNotifiedVia(t, "gcppubsub", fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"},
		RecordsPerFile: 4, Seed: 6}, "auto_replay_nacks: false")
	n.ps.RefuseExtensions(n.topic)
	w, x := n.written[0], n.written[1]
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	_, acks := n.read(len(w.Records))

	// The notification's ack deadline passes while w's events are in the
	// pipeline: the server delivers it again.
	n.ps.Advance(2 * time.Minute)
	deadline := time.After(30 * time.Second)
	for n.ps.Deliveries(n.topic, []byte(gcsNoticeBody)) < 2 {
		select {
		case <-deadline:
			t.Fatal("the notification was not delivered again")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// x's notification, published once the copy was delivered, is handled
	// after it: once x settles, the copy was handled.
	n.publishGCS("acme-currents", x.Key, "OBJECT_FINALIZE")
	_, xAcks := n.read(len(x.Records))
	for _, ack := range xAcks {
		_ = ack(context.Background(), nil)
	}
	for s := n.nextSettled(); s.object != x.Key; s = n.nextSettled() {
		// Neither acknowledged (the read may still fail) nor sent back (the
		// queue would deliver it again and again while the read goes on).
		if s.object == w.Key {
			t.Errorf("the notification of %s was settled (acked %v; its copy) while none of its %d events was", w.Key, s.acked, len(w.Records))
		}
	}

	// The read fails: the notification goes back to the queue, which
	// delivers it again, and the object is read again.
	for _, ack := range acks {
		_ = ack(context.Background(), errors.New("segment refused"))
	}
	ids, _ := n.read(len(w.Records))
	for _, r := range w.Records {
		if ids[r["id"].(string)] == 0 {
			t.Fatalf("event %v not read again", r["id"])
		}
	}
}
