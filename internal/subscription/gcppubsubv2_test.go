package subscription

import (
	"context"
	"slices"
	"testing"
	"time"

	_ "gocloud.dev/pubsub/gcppubsubv2"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestGCPPubSubV2ShutdownSendsBackFirst: when a gcppubsubv2 subscription's
// Shutdown returns, the server has seen its streaming pull end, and the
// message nacked once stopping began and the one the client leased ahead
// and never handed out have been nacked; both are delivered again at once.
// Before, Shutdown returned with the stream still open and nothing nacked:
// the nack went after it, at times onto the open stream, where the message
// went again and waited out its ack deadline; the message leased ahead was
// extended, and the open stream took messages published later.
func TestGCPPubSubV2ShutdownSendsBackFirst(t *testing.T) {
	ps := pubsubServer
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	bodies := []string{"one", "two"}
	for _, b := range bodies {
		ps.Publish(t, name, []byte(b), nil)
	}
	sub, err := Open(ctx, "gcppubsubv2://"+ps.Project+"/"+name, len(bodies))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	queues.Eventually(t, ctx, "both messages leased", func() bool { return ps.Leased(name) == 2 })
	sub.Stopping()
	sub.Nack(m)
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		mods := ps.Modacks(name, []byte(b))
		if len(mods) == 0 || mods[len(mods)-1].AckDeadline != 0 {
			t.Fatalf("%q (received: %q) not nacked when Shutdown returned: %+v", b, m.Body, mods)
		}
	}
	ps.WaitPullsClosed(t, name)
	var got []string
	for _, b := range ps.Pull(t, name) {
		got = append(got, string(b))
	}
	slices.Sort(got)
	if !slices.Equal(got, bodies) {
		t.Fatalf("pulled %q right after the shutdown, want both again", got)
	}
}

// TestGCPPubSubV2HoldsPastAnHour: the client extends the deadline of a
// message held only up to its MaxExtension, 60 minutes by default, after
// which the server delivers it again while the pipeline still holds it (a
// Segment outage of over an hour). The subscription sets it to maxHold, 7
// days. Checked on the client's settings: an hour of the client's real
// clock is out of a test's reach.
func TestGCPPubSubV2HoldsPastAnHour(t *testing.T) {
	ps := pubsubServer
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	sub, err := Open(ctx, "gcppubsubv2://"+ps.Project+"/"+name, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	if got := sub.v2.sub.ReceiveSettings.MaxExtension; got != maxHold {
		t.Fatalf("the client extends a held message for %v, want %v", got, maxHold)
	}
}
