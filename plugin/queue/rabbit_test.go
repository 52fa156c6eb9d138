package queue

import (
	"context"
	"fmt"
	"log"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// TestRabbitOutputSurvivesBrokerCrash: the broker is killed (SIGKILL) while
// a stream sends to it through the queue output, and started again. Every
// send the stream acknowledged is in the queue afterwards, those from
// before the crash included (the broker had confirmed them), and sends go
// on after the restart: the output opens a new connection (amqp091 never
// reconnects). The queue is a classic durable one, RabbitMQ's default.
func TestRabbitOutputSurvivesBrokerCrash(t *testing.T) {
	r := sharedRabbit(t)
	prefix := fmt.Sprintf("%s-%d-", t.Name(), rabbitRuns.Add(1))
	r.Declare(t, prefix+"out", prefix+"out-sub", queues.Classic)

	send := runProducer(t, "url: "+r.TopicURL(prefix+"out"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	const before, after = 20, 20
	for i := range before {
		if err := send(ctx, service.NewMessage([]byte(body(i)))); err != nil {
			t.Fatal(err)
		}
	}
	// The output finds its connection closed and opens another, within the
	// send: the stream sees no error. (The broker routes as soon as it
	// answers: it recovers queues and bindings before it listens.)
	r.Restart(t)
	for i := before; i < before+after; i++ {
		if err := send(ctx, service.NewMessage([]byte(body(i)))); err != nil {
			t.Fatalf("%s after the restart: %v", body(i), err)
		}
	}
	var bodies []string
	for i := range before + after {
		bodies = append(bodies, body(i))
	}
	got := receiveAll(t, r.SubscriptionURL(prefix+"out-sub"), bodies...)
	t.Logf("%d messages sent, %d deliveries", before+after, got)
}

// receiveAll reads the subscription, acknowledging each message, until
// every one of bodies arrived, and returns the deliveries (duplicates
// included).
func receiveAll(t *testing.T, subURL string, bodies ...string) int {
	t.Helper()
	missing := map[string]bool{}
	for _, b := range bodies {
		missing[b] = true
	}
	deliveries := 0
	readSub(t, subURL, func(m *pubsub.Message) bool {
		delete(missing, string(m.Body))
		deliveries++
		return len(missing) > 0
	}, func(err error) string {
		return fmt.Sprintf("%d of %d messages arrived (%v); missing %v",
			len(bodies)-len(missing), len(bodies), err, slices.Sorted(maps.Keys(missing)))
	})
	return deliveries
}

// TestRabbitInputShutdown: once a stream reading a queue stopped midway,
// every message it delivered is acknowledged on the broker and every other
// one is ready for the queue's other consumers: the input holds none (a
// consumer left behind would hold what it had fetched ahead until the
// process exits, and take new messages). The stop begins while a message
// is held in the pipeline: its acknowledgement is one the stop must flush.
func TestRabbitInputShutdown(t *testing.T) {
	r := startRabbit(t)
	const n, held, extra = 40, 10, 5
	for i := range n {
		r.Publish(t, "in", []byte(body(i)), nil)
	}
	seen := &tally{seen: map[string]int{}}
	stopHolding(t, r.SubscriptionURL("in-sub"), seen, held)
	for i := range extra {
		r.Publish(t, "in", []byte(fmt.Sprintf("after-%d", i)), nil)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for b, c := range seen.seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", b, c)
		}
	}
	want := queues.QueueState{Ready: n - len(seen.seen) + extra}
	if s := r.State(t, r.prefix+"in-sub"); s != want {
		t.Fatalf("the stream stopped having delivered %d of %d messages, and %d more were published: "+
			"the queue has %d ready and %d consumers, want %d and none",
			len(seen.seen), n, extra, s.Ready, s.Consumers, want.Ready)
	}
	t.Logf("the stream stopped having delivered %d of %d messages", len(seen.seen), n)
}

// TestRabbitCredentialsHidden: RABBIT_SERVER_URL's password shows in no
// error of the input's own connection, whether the broker is unreachable or
// refuses it; the errors name the queue and the broker. (The output dials
// through gocloud's driver, which redacts the password the same way, and
// keeps its connection for the process.)
func TestRabbitCredentialsHidden(t *testing.T) {
	r := sharedRabbit(t)
	l, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing serves once closed
	if err != nil {
		t.Fatal(err)
	}
	unreachable := l.Addr().String()
	l.Close()
	for _, broker := range []string{unreachable, fmt.Sprintf("127.0.0.1:%d", r.Port)} {
		t.Setenv("RABBIT_SERVER_URL", "amqp://guest:hunter2@"+broker+"/")
		in, err := buildInput("url: rabbit://orders")
		if err != nil {
			t.Fatal(err)
		}
		err = in.Connect(context.Background())
		if err == nil || strings.Contains(err.Error(), "hunter2") ||
			!strings.Contains(err.Error(), "rabbit://orders") || !strings.Contains(err.Error(), broker) {
			t.Errorf("%v, want the queue and the broker %s named, without the password", err, broker)
		}
		t.Log(err)
	}
}

// TestRabbitInputLeavesNoUnsettledWarning: a message the input settles on
// the channel that delivered it is settled for gocloud too. gocloud's
// finalizer logged "A pubsub.Message was never Acked or Nacked" through the
// standard logger for every rabbit message read once they were settled
// beside it.
func TestRabbitInputLeavesNoUnsettledWarning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// Earlier tests leave messages unsettled on purpose (a stop while they
	// are held): their finalizers run first.
	runFinalizers(t, ctx)
	// A file: the standard logger writes from the finalizers' goroutine.
	logPath := filepath.Join(t.TempDir(), "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log.SetOutput(logFile)
	t.Cleanup(func() { log.SetOutput(os.Stderr); _ = logFile.Close() })
	r := startRabbit(t)
	const n = 20
	for i := range n {
		r.Publish(t, "in", []byte(body(i)), nil)
	}
	in := newInput(t, "url: "+r.SubscriptionURL("in-sub"))
	for range n {
		_, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	runFinalizers(t, ctx)
	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logged), "never Acked") {
		t.Fatalf("gocloud logged messages as never settled:\n%s", logged)
	}
}

// runFinalizers collects garbage until the finalizers of what was
// unreachable have run: those a collection queues run before those a later
// one queues.
func runFinalizers(t *testing.T, ctx context.Context) {
	t.Helper()
	for range 2 {
		done := make(chan struct{})
		sentinel := &struct{ p *int }{new(int)}
		runtime.SetFinalizer(sentinel, func(*struct{ p *int }) { close(done) })
		sentinel = nil
		runtime.GC()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("finalizers did not run")
		}
	}
}
