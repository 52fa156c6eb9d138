package e2e

// The queue components in the binary: Pub/Sub to Pub/Sub, the binary
// killed mid-run and started again; RabbitMQ to RabbitMQ, the broker killed
// mid-run and started again.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/gcppubsubv2"
	_ "gocloud.dev/pubsub/rabbitpubsub"

	"github.com/currents-connect/currents-connect/tests/queues"
)

// receiverPubSub is the server of the tests that receive in this process:
// the gcppubsubv2 driver dials the PUBSUB_EMULATOR_HOST of its first use
// only, so a second run of such a test (go test -count) needs the same
// server.
var receiverPubSub = sync.OnceValue(queues.NewPubSub)

// TestQueueKilledMidRun: n messages go from a Pub/Sub subscription through
// the queue input and output to another topic; the binary is killed with
// SIGKILL once a quarter arrived and started again. Every message arrives;
// the duplicates (what the killed run had sent but not acknowledged) are
// counted and logged. The killed run's unacknowledged messages come back
// after the client's stream ack deadline (60 s), which the test passes by
// moving the server's clock.
func TestQueueKilledMidRun(t *testing.T) {
	const n = 600
	ps := receiverPubSub()
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr) // for the receiver here
	in, out := ps.Name(t), ps.Name(t)
	ps.CreateTopic(t, in, in, 10*time.Second)
	ps.CreateTopic(t, out, out, 10*time.Second)
	for i := range n {
		ps.Publish(t, in, fmt.Appendf(nil, "event-%04d", i), map[string]string{"seq": fmt.Sprint(i)})
	}
	cfg := queueConfig(t, ps.SubscriptionURL(in), ps.TopicURL(out))

	got := newArrivals(t, ps.SubscriptionURL(out))
	first := startConnect(t, repoRoot, ps.Env(), got.events, "-c", cfg)
	waitFor(t, got.events, time.Minute, "a quarter of the messages", func() (bool, error) {
		distinct, _ := got.counts()
		return distinct >= n/4, nil
	})
	first.kill9()
	atKill, _ := got.counts()
	if atKill >= n {
		t.Fatalf("all %d messages arrived before the kill: the test proves nothing", n)
	}

	// What the killed run held comes back once its ack deadline passed. The
	// server must have seen the killed run's stream close first, or it hands
	// those messages to that stream again, for another 60 s.
	ps.WaitPullsClosed(t, in)
	ps.Advance(time.Minute + time.Second)
	second := startConnect(t, repoRoot, ps.Env(), got.events, "-c", cfg)
	got.waitAll(t, second, n, fmt.Sprintf("%d arrived before the kill", atKill))
}

// TestQueueRabbitKilledMidRun: n messages go from a RabbitMQ queue through
// the queue input and output to an exchange; the broker is killed with
// SIGKILL once a quarter arrived and started again. The binary's input and
// output connect again, and every message arrives: the broker kept the
// queued ones (persistent, in durable queues), and gave back those the
// binary held unacknowledged when its connection died (duplicates).
func TestQueueRabbitKilledMidRun(t *testing.T) {
	const n = 300
	r := queues.StartRabbit(t)
	t.Setenv("RABBIT_SERVER_URL", r.URL()) // for the receiver here
	r.Declare(t, "in", "in-sub", queues.Classic)
	r.Declare(t, "out", "out-sub", queues.Classic)
	for i := range n {
		r.Publish(t, "in", fmt.Appendf(nil, "event-%04d", i), map[string]string{"seq": fmt.Sprint(i)})
	}
	cfg := queueConfig(t, r.SubscriptionURL("in-sub"), r.TopicURL("out"))

	got := newArrivals(t, r.SubscriptionURL("out-sub"))
	proc := startConnect(t, repoRoot, r.Env(), got.events, "-c", cfg)
	waitFor(t, got.events, time.Minute, "a quarter of the messages", func() (bool, error) {
		distinct, _ := got.counts()
		return distinct >= n/4, nil
	})
	r.Restart(t)
	atKill, _ := got.counts()
	if atKill >= n {
		t.Fatalf("all %d messages arrived before the broker was killed: the test proves nothing", n)
	}
	// The receiver's connection died with the broker: a new subscription.
	got.subscribe(t, r.SubscriptionURL("out-sub"))
	got.waitAll(t, proc, n, fmt.Sprintf("%d arrived before the broker was killed", atKill))
}

// queueConfig writes a pipeline from the subscription inURL to the topic
// outURL, keeping the attribute seq. The sleep paces the run so that a kill
// lands in its middle.
func queueConfig(t *testing.T, inURL, outURL string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "queue.yaml")
	if err := os.WriteFile(cfg, []byte(`
http:
  enabled: false # no port to share with other runs: the binary stops a run whose server cannot listen
input:
  queue:
    url: `+inURL+`
    max_in_flight: 32
pipeline:
  processors:
    - sleep:
        duration: 10ms
output:
  queue:
    url: `+outURL+`
    metadata:
      include_prefixes: [ seq ]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// arrivals receives what the pipeline sends to a subscription, counting
// deliveries per body.
type arrivals struct {
	events *notifier
	mu     sync.Mutex
	seen   map[string]int
	bad    string
}

func newArrivals(t *testing.T, subURL string) *arrivals {
	a := &arrivals{events: newNotifier(), seen: map[string]int{}}
	a.subscribe(t, subURL)
	return a
}

// subscribe receives from subURL too, until the test ends or the
// subscription fails.
func (a *arrivals) subscribe(t *testing.T, subURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := pubsub.OpenSubscription(ctx, subURL)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := sub.Receive(ctx)
			if err != nil {
				return
			}
			m.Ack()
			a.mu.Lock()
			a.seen[string(m.Body)]++
			if want := "event-" + fmt.Sprintf("%04s", m.Metadata["seq"]); want != string(m.Body) && a.bad == "" {
				a.bad = fmt.Sprintf("%q arrived with attributes %v", m.Body, m.Metadata)
			}
			a.mu.Unlock()
			a.events.notify()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = sub.Shutdown(context.Background())
	})
}

// waitAll waits until all n messages arrived while proc runs, then logs
// the duplicates (before says what arrived before the fault) and checks
// the attributes.
func (a *arrivals) waitAll(t *testing.T, proc *connectProc, n int, before string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			distinct, total := a.counts()
			t.Logf("%d of %d messages arrived (%s), %d deliveries; the pipeline's last lines:\n%s",
				distinct, n, before, total, lastLines(proc.logs(), 30))
		}
	}()
	waitFor(t, a.events, 2*time.Minute, fmt.Sprintf("all %d messages", n), func() (bool, error) {
		distinct, _ := a.counts()
		if proc.exited() {
			return false, fmt.Errorf("the pipeline exited (%v):\n%s", proc.err, lastLines(proc.logs(), 30))
		}
		return distinct == n, nil
	})
	distinct, total := a.counts()
	t.Logf("%d messages, %s, %d deliveries in all: %d duplicates", n, before, total, total-distinct)
	if bad := a.badAttributes(); bad != "" {
		t.Fatal(bad)
	}
}

// counts is how many distinct messages arrived, and how many deliveries.
func (a *arrivals) counts() (distinct, total int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.seen {
		total += c
	}
	return len(a.seen), total
}

func (a *arrivals) badAttributes() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bad
}
