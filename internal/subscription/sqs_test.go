package subscription

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	_ "gocloud.dev/pubsub/awssnssqs"

	"github.com/currents-connect/currents-connect/internal/driverlog"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestSQSExtendsHeldMessages: messages received from an SQS queue whose
// visibility timeout is 2 s are kept from the other consumers while held
// (each visibility pushed to a minute from now), and so are those gocloud
// fetched ahead of the receives; a nacked one comes back and an
// acknowledged one is deleted; what is still held or fetched ahead at
// shutdown is sent back at once. Without the extensions both came back 2 s after
// they were received, while still held.
func TestSQSExtendsHeldMessages(t *testing.T) {
	s := queues.StartSQS(t)
	s.SetEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	u := s.CreateQueue(t, "q", map[string]string{"VisibilityTimeout": "2"})
	// ahead is often fetched by gocloud ahead of the receives: held from
	// the moment SQS delivered it too.
	for _, body := range []string{"acked", "nacked", "held", "ahead"} {
		s.Send(t, "q", []byte(body), nil)
	}
	sub, err := Open(ctx, u, 10)
	if err != nil {
		t.Fatal(err)
	}
	held := receiveBodies(t, ctx, sub, 3)
	queues.Eventually(t, ctx, "each visibility extended to about a minute", func() bool {
		for _, m := range s.Messages(t, "q") {
			if !m.VisibleAt.IsZero() && time.Until(m.VisibleAt) < 30*time.Second {
				return false
			}
		}
		return true
	})

	sub.Nack(held["nacked"])
	again, err := sub.Receive(ctx)
	for err == nil && string(again.Body) == "ahead" {
		again, err = sub.Receive(ctx) // held, unsettled, to the end
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Body) != "nacked" || s.Deliveries(t, "q", []byte("nacked")) != 2 {
		t.Fatalf("received %q after the nack (the nacked message delivered %d times), want it again",
			again.Body, s.Deliveries(t, "q", []byte("nacked")))
	}
	sub.Ack(again)
	sub.Ack(held["acked"])
	if err := sub.Shutdown(ctx); err != nil { // flushes the acks
		t.Fatal(err)
	}
	left := s.Messages(t, "q")
	if len(left) != 2 {
		t.Fatalf("after the shutdown the queue holds %+v, want the held message and the one ahead", left)
	}
	for _, m := range left {
		if !m.VisibleAt.IsZero() && time.Until(m.VisibleAt) > time.Second {
			t.Fatalf("after the shutdown the queue holds %+v, want every message not acknowledged visible again", left)
		}
	}
}

// TestSQSExtensionFailureLogged: extensions that fail (the queue was
// deleted) are logged once, naming the queue.
func TestSQSExtensionFailureLogged(t *testing.T) {
	s := queues.StartSQS(t)
	s.SetEnv(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	logged := driverlog.With(ctx, service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil))))
	u := s.CreateQueue(t, "gone", nil)
	s.Send(t, "gone", []byte("held"), nil)
	sub, err := Open(logged, u, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Shutdown(ctx)
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	s.DeleteQueue(t, "gone")
	const failed = "extending the visibility timeout"
	queues.Eventually(t, ctx, "the failure logged", func() bool { return strings.Contains(logs.String(), failed) })
	// More extensions fail the same way, unlogged.
	for range 3 {
		sub.leases.extend(ctx)
	}
	if n := strings.Count(logs.String(), failed); n != 1 {
		t.Fatalf("the failure logged %d times, want once:\n%s", n, logs)
	}
	if want := "SQS queue https://sqs.us-east-1.amazonaws.com/000000000000/gone"; !strings.Contains(logs.String(), want) {
		t.Fatalf("the log does not name %s:\n%s", want, logs)
	}
}

// A handle refused because its message was settled while the extension
// was on its way (SQS deleted it) is no failure; one still held is.
func TestSQSRefusedHandleOfASettledMessage(t *testing.T) {
	l := &leases{held: map[string]time.Time{"kept": {}}}
	if l.stillHeld(&sqsRefused{handles: []string{"deleted"}}) {
		t.Fatal("a refused handle of a settled message counted as a failure")
	}
	if !l.stillHeld(&sqsRefused{handles: []string{"deleted", "kept"}}) {
		t.Fatal("a refused handle of a message still held not counted")
	}
	if !l.stillHeld(context.DeadlineExceeded) {
		t.Fatal("a failed call not counted")
	}
}
