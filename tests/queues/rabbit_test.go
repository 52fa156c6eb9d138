package queues

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/rabbitpubsub"
)

// rabbit is the broker of the tests below, each on queues of its own: each
// restarts it.
var rabbit = &SharedRabbit{}

var runs atomic.Int32

// ownNames gives a test run names of its own: the broker outlives a run
// (-count), and the durable queues a run declared, messages included, are
// there at the next.
func ownNames() func(string) string {
	run := "-" + strconv.Itoa(int(runs.Add(1)))
	return func(name string) string { return name + run }
}

func TestMain(m *testing.M) {
	code := m.Run()
	rabbit.Close()
	os.Exit(code)
}

// TestRabbitRedeliversAndRestarts: the broker runs on its own port and
// database, speaks AMQP to gocloud's driver, redelivers a nacked message
// (a quorum queue counts it in x-delivery-count), and after a SIGKILL and a
// restart still has the durable queue and the persistent message.
func TestRabbitRedeliversAndRestarts(t *testing.T) {
	r := rabbit.Get(t)
	if got := r.Env(); len(got) != 1 || got[0] != "RABBIT_SERVER_URL="+r.URL() {
		t.Fatalf("Env %v", got)
	}
	t.Setenv("RABBIT_SERVER_URL", r.URL())
	own := ownNames()
	r.Declare(t, own("ex"), own("q"), Quorum)
	r.Publish(t, own("ex"), []byte("hello"), map[string]string{"k": "v"})
	if s := r.State(t, own("q")); s != (QueueState{Ready: 1}) {
		t.Fatalf("queue state %+v after one publish", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := pubsub.OpenSubscription(ctx, r.SubscriptionURL(own("q")))
	if err != nil {
		t.Fatal(err)
	}
	again := receiveNackReceive(t, ctx, sub)
	if again.Metadata["x-delivery-count"] != "1" {
		t.Fatalf("redelivered with %v, want x-delivery-count 1", again.Metadata)
	}
	again.Ack()
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	r.Declare(t, own("durable"), own("kept"), Classic)
	r.Publish(t, own("durable"), []byte("kept"), nil)
	r.Restart(t)
	if s := r.State(t, own("kept")); s.Ready != 1 {
		t.Fatalf("after the restart the queue has %d messages, want the 1 published", s.Ready)
	}
}

// TestRabbitRestartKeepsFreshDefinitions: an exchange, a queue and their
// binding declared just before a Restart are there after it: a message
// published to the exchange reaches the queue. RabbitMQ logs that such a
// declaration committed only after acknowledging it, from its process
// mnesia_recover; under load that came late, and the binding of
// TestRabbitOutputSurvivesBrokerCrash was lost with the kill (NO_ROUTE for
// every send after it). The test holds mnesia_recover (sys:suspend) while
// it declares, which makes that lateness certain.
func TestRabbitRestartKeepsFreshDefinitions(t *testing.T) {
	r := rabbit.Get(t)
	if err := r.call("ok", "sys", "suspend", "[mnesia_recover]"); err != nil {
		t.Fatal(err)
	}
	own := ownNames()
	r.Declare(t, own("fresh"), own("fresh-q"), Classic)
	if err := r.call("ok", "sys", "resume", "[mnesia_recover]"); err != nil {
		t.Fatal(err)
	}
	r.Restart(t)
	r.Publish(t, own("fresh"), []byte("after"), nil)
	if s := r.State(t, own("fresh-q")); s.Ready != 1 {
		t.Fatalf("after the restart the queue has %d messages, want the 1 published to its exchange", s.Ready)
	}
}
