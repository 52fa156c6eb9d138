package subscription

import (
	"context"
	"testing"
	"time"

	_ "gocloud.dev/pubsub/azuresb"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// serviceBus is the package's Service Bus fake: gocloud's azuresb opener
// reads SERVICEBUS_CONNECTION_STRING once a process, so the tests share
// one, each with topics of its own.
var serviceBus = &queues.SharedServiceBus{}

// TestServiceBusRenewsHeldLocks: a Service Bus subscription whose lock
// lasts 3 s; three messages received and held for several lock durations
// are renewed and none comes back while held. A nacked one comes again at
// once; what is still held at shutdown is abandoned, counted once, as its
// lock ending would (TestServiceBusShutdownAbandonsHeld).
func TestServiceBusRenewsHeldLocks(t *testing.T) {
	defer func(p time.Duration) { leasePeriod = p }(leasePeriod)
	leasePeriod = 500 * time.Millisecond // renewals every second or so
	sb := serviceBus.Get(t)
	sb.SetEnv(t)
	topic := sb.Name(t)
	sb.CreateSubscription(t, topic, "s", 3*time.Second, 0)
	for _, body := range []string{"acked", "nacked", "held"} {
		sb.Send(t, topic, []byte(body))
	}
	renewed := sb.Renewals(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := Open(ctx, sb.SubscriptionURL(topic, "s"), 10)
	if err != nil {
		t.Fatal(err)
	}
	held := receiveBodies(t, ctx, sub, 3)
	start := time.Now()
	// Two lock durations at least: every lock renewed some five times.
	queues.Eventually(t, ctx, "the locks renewed over two lock durations", func() bool {
		for _, m := range sb.Messages(t, topic, "s") {
			if m.State != queues.SBLocked || m.DeliveryCount != 0 {
				t.Fatalf("while held: %+v, want it locked since its first delivery", m)
			}
		}
		return sb.Renewals(t)-renewed >= 15 && time.Since(start) > 6*time.Second
	})

	sub.Nack(held["nacked"])
	again, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Body) != "nacked" {
		t.Fatalf("received %q after the nack, want the nacked message again", again.Body)
	}
	sub.Ack(again)
	sub.Ack(held["acked"])
	if err := sub.Shutdown(ctx); err != nil { // flushes the acks
		t.Fatal(err)
	}
	left := sb.Messages(t, topic, "s")
	if len(left) != 1 || left[0].Body != "held" || left[0].State != queues.SBAvailable || left[0].DeliveryCount != 1 {
		t.Fatalf("after the shutdown the subscription holds %+v, want the held message alone, available, its one delivery the one it was held through", left)
	}
}

// TestServiceBusShutdownAbandonsHeld: what a subscription still holds when
// it shuts down (Connect's shutdown ran out of time with Segment down, a
// notification whose object's events wait) is abandoned, and another
// receiver gets it at once, not once its lock (a minute here) ended. What
// was acknowledged stays acknowledged.
func TestServiceBusShutdownAbandonsHeld(t *testing.T) {
	sb := serviceBus.Get(t)
	sb.SetEnv(t)
	topic := sb.Name(t)
	sb.CreateSubscription(t, topic, "s", time.Minute, 0)
	for _, body := range []string{"acked", "held"} {
		sb.Send(t, topic, []byte(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := Open(ctx, sb.SubscriptionURL(topic, "s"), 10)
	if err != nil {
		t.Fatal(err)
	}
	held := receiveBodies(t, ctx, sub, 2)
	sub.Ack(held["acked"])
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	left := sb.Messages(t, topic, "s")
	if len(left) != 1 || left[0].Body != "held" || left[0].State != queues.SBAvailable {
		t.Fatalf("after the shutdown the subscription holds %+v, want the held message alone, available to another receiver at once", left)
	}
	next, err := Open(ctx, sb.SubscriptionURL(topic, "s"), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Shutdown(context.Background()) }()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	m, err := next.Receive(rctx)
	if err != nil || string(m.Body) != "held" {
		t.Fatalf("received %v (%v) from another receiver, want the held message within 10 s", m, err)
	}
	next.Ack(m)
}
