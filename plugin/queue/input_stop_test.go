package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestInputNackAtTheStopWaitsForTheShutdown: a gcppubsubv2 message the
// pipeline nacks once the stream began to stop (Connect cancels the context
// of every Read then) is nacked by the subscription's shutdown, as the
// client's streaming pull ends, and the server has the nack when Close
// returned. Before, the input never told its subscription it was
// stopping: the client sent the nack on the streaming pull about to end
// (the server delivered the message onto that stream again, or the client
// dropped the nack as the stream closed), where it could wait out the
// stream's 60 s ack deadline.
func TestInputNackAtTheStopWaitsForTheShutdown(t *testing.T) {
	ps := startPubSub(t)
	topic, sub, body := ps.prefix+"in", ps.prefix+"in-sub", []byte("held")
	ps.Publish(t, "in", body, nil)
	in := newInput(t, "url: "+ps.SubscriptionURL("in-sub"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	reads, beginStop := context.WithCancel(ctx)
	defer beginStop()
	_, ack, err := in.Read(reads)
	if err != nil {
		t.Fatal(err)
	}
	queues.Eventually(t, ctx, "the message leased", func() bool { return ps.Leased(topic) == 1 })
	nacked := func() bool { mods := ps.Modacks(topic, body); return mods[len(mods)-1].AckDeadline == 0 }

	stopBegan := time.Now()
	beginStop()
	if err := ack(ctx, errors.New("the output stops")); err != nil {
		t.Fatal(err)
	}
	// The client sends a nack within 100 ms; it extends a message it still
	// holds every few seconds. Whichever comes first says which it did.
	queues.Eventually(t, ctx, "the message nacked or extended", func() bool { return nacked() || ps.ExtendedSince(topic, stopBegan) })
	if nacked() {
		t.Fatalf("the message nacked at the stop was nacked on the open streaming pull before Close: %+v", ps.Modacks(topic, body))
	}

	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !nacked() {
		t.Fatalf("the server had no nack of the message when Close returned: %+v", ps.Modacks(topic, body))
	}
	// Pub/Sub's part: the client nacks as it ends its stream, and a server
	// that has not seen the end yet may deliver the message onto that stream
	// again (1 run in 6 here), where it waits out the stream's 60 s deadline
	// (docs/queues.md): the server's clock is moved past it.
	ps.WaitPullsClosed(t, sub)
	ps.Advance(time.Minute + time.Second)
	if got := ps.Pull(t, sub); !slices.EqualFunc(got, [][]byte{body}, slices.Equal) {
		t.Fatalf("pulled %q right after Close, want the nacked message back; deliveries %d, modacks %+v", got, ps.PubSub.Deliveries(topic, body), ps.Modacks(topic, body))
	}
}
