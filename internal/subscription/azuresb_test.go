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
// once; what is still held at shutdown keeps its lock until it ends.
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
	if len(left) != 1 || left[0].Body != "held" || left[0].DeliveryCount != 0 {
		t.Fatalf("after the shutdown the subscription holds %+v, want the held message alone, never redelivered", left)
	}
}
