package subscription

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/gcppubsub"

	"github.com/currents-connect/currents-connect/internal/driverlog"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// waitLimit bounds every wait, so that a bug fails a test, not hangs it.
const waitLimit = 2 * time.Minute

// pubsubServer is the package's Pub/Sub server: gocloud's gcppubsub driver
// dials the PUBSUB_EMULATOR_HOST of its first use only.
var pubsubServer *queues.PubSub

func TestMain(m *testing.M) {
	pubsubServer = queues.NewPubSub()
	os.Setenv("PUBSUB_EMULATOR_HOST", pubsubServer.Addr)
	leasePeriod, renewPeriod = 20*time.Millisecond, 20*time.Millisecond
	code := m.Run()
	_ = pubsubServer.Close()
	serviceBus.Close()
	os.Exit(code)
}

// TestGCPPubSubExtendsHeldMessages: messages received from a gcppubsub
// subscription and held past its ack deadline, again and again, are not
// delivered again; a nacked one is no longer extended and comes back; an
// acked one is acknowledged. Without the extensions the server delivered
// both again once the clock passed their 10 s deadline.
func TestGCPPubSubExtendsHeldMessages(t *testing.T) {
	ps := pubsubServer
	acked, nacked := []byte("acked"), []byte("nacked")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	name, sub := openGCP(t, ctx, string(acked), string(nacked))
	held := map[string]*pubsub.Message{}
	for len(held) < 2 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held[string(m.Body)] = m
	}
	for range 3 {
		since := time.Now()
		queues.Eventually(t, ctx, "an extension of both messages", func() bool {
			return extendedSince(ps, name, acked, since) && extendedSince(ps, name, nacked, since)
		})
		ps.Advance(15 * time.Second) // past the subscription's deadline
		if got := ps.Pull(t, name); len(got) > 0 {
			t.Fatalf("delivered again while held: %q", got)
		}
	}

	sub.Nack(held[string(nacked)])
	var nackedAt time.Time
	queues.Eventually(t, ctx, "the nack", func() bool {
		for _, mod := range ps.Modacks(name, nacked) {
			if mod.AckDeadline == 0 {
				nackedAt = mod.ReceivedAt
				return true
			}
		}
		return false
	})
	// An extension of the message still held went out after the nack: it
	// would have carried the nacked one too.
	queues.Eventually(t, ctx, "an extension after the nack", func() bool { return extendedSince(ps, name, acked, nackedAt) })
	if extendedSince(ps, name, nacked, nackedAt) {
		t.Fatal("the nacked message was extended after its nack")
	}
	queues.Eventually(t, ctx, "the nacked message delivered again", func() bool {
		ps.Pull(t, name)
		return ps.Deliveries(name, nacked) == 2
	})

	sub.Ack(held[string(acked)])
	if err := sub.Shutdown(ctx); err != nil { // flushes the ack
		t.Fatal(err)
	}
	if n := ps.Acked(name); n != 1 {
		t.Fatalf("%d messages acknowledged on the server, want 1", n)
	}
	if d := ps.Deliveries(name, acked); d != 1 {
		t.Fatalf("the server delivered the acked message %d times, want once", d)
	}
}

// TestGCPPubSubNackAfterSlowExtension: a message nacked while an
// extension carrying it is on its way is nacked again once the extension
// returned. The extension could reach the server after the nack and hold
// the message back for a minute instead of having it delivered again at
// once.
func TestGCPPubSubNackAfterSlowExtension(t *testing.T) {
	ps := pubsubServer
	body := []byte("nacked")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	name, sub := openGCP(t, ctx, string(body))
	defer sub.Shutdown(ctx)
	m, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release := ps.HoldExtensions(name)
	defer release()
	calls := ps.Calls("ModifyAckDeadline")
	queues.Eventually(t, ctx, "an extension held on its way", func() bool { return ps.Calls("ModifyAckDeadline") > calls })
	sub.Nack(m)
	var nacked int // the modacks up to the nack's
	queues.Eventually(t, ctx, "the nack", func() bool {
		mods := ps.Modacks(name, body)
		nacked = len(mods)
		return nacked > 0 && mods[nacked-1].AckDeadline == 0
	})
	release()
	queues.Eventually(t, ctx, "the held extension, then a nack again", func() bool {
		mods := ps.Modacks(name, body)
		return len(mods) > nacked+1 && mods[nacked].AckDeadline > 0 && mods[len(mods)-1].AckDeadline == 0
	})
}

// TestGCPPubSubShutdownSendsBackHeld: a message still held when the
// subscription shuts down (its pipeline's shutdown ran out of time) is
// delivered again at once, not a minute after its last extension; one
// acked before stays acknowledged.
func TestGCPPubSubShutdownSendsBackHeld(t *testing.T) {
	ps := pubsubServer
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	name, sub := openGCP(t, ctx, "acked", "held")
	for range 2 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) == "acked" {
			sub.Ack(m)
		}
	}
	start := time.Now()
	queues.Eventually(t, ctx, "an extension of the held message", func() bool { return extendedSince(ps, name, []byte("held"), start) })
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ps.Pull(t, name); len(got) != 1 || string(got[0]) != "held" {
		t.Fatalf("pulled %q right after the shutdown, want the held message again", got)
	}
	if n := ps.Acked(name); n != 1 {
		t.Fatalf("%d messages acknowledged on the server, want 1", n)
	}
}

// TestGCPPubSubShutdownSendsBackFetchedAhead: what gocloud pulled ahead of
// the input and never handed to it is extended while it waits, and sent
// back at shutdown with what the input held, delivered again at once.
// Before, only the messages the input had received were: the others were
// never extended, and at shutdown waited out the subscription's ack
// deadline (10 s here, up to 10 minutes) before another consumer got them.
func TestGCPPubSubShutdownSendsBackFetchedAhead(t *testing.T) {
	ps := pubsubServer
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	bodies := make([]string, 20)
	for i := range bodies {
		bodies[i] = strconv.Itoa(i)
	}
	name, sub := openGCP(t, ctx, bodies...)
	// Received one after another, faster than gocloud expects: its batches
	// grow, and it pulls the next ahead.
	start := time.Now()
	received := map[string]bool{}
	for len(received) < 4 || countDelivered(ps, name, bodies) <= len(received) {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		received[string(m.Body)] = true
		if m.Body[0]%2 == 0 {
			sub.Ack(m)
		}
		if len(received) == len(bodies) {
			t.Fatal("gocloud pulled nothing ahead of the receives")
		}
	}
	// No Receive starts a pull any more: the last one started returns.
	queues.Eventually(t, ctx, "the pulls answered", func() bool { return ps.Answered("Pull") == ps.Calls("Pull") })
	var ahead []string
	for _, b := range bodies {
		if !received[b] && ps.Deliveries(name, []byte(b)) > 0 {
			ahead = append(ahead, b)
		}
	}
	// Held from redelivery while they wait, as the messages received are.
	queues.Eventually(t, ctx, "an extension of what was pulled ahead", func() bool {
		for _, b := range ahead {
			if !extendedSince(ps, name, []byte(b), start) {
				return false
			}
		}
		return true
	})
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Every message not acknowledged, received or not, is delivered again
	// at once; those never delivered too.
	got, acked := len(ps.Pull(t, name)), ps.Acked(name)
	if got+acked != len(bodies) {
		t.Fatalf("pulled %d right after the shutdown, %d acknowledged, of %d: %d received, %d pulled ahead",
			got, acked, len(bodies), len(received), len(ahead))
	}
}

// countDelivered is how many of the messages of bodies the server
// delivered at least once.
func countDelivered(ps *queues.PubSub, topic string, bodies []string) int {
	n := 0
	for _, b := range bodies {
		if ps.Deliveries(topic, []byte(b)) > 0 {
			n++
		}
	}
	return n
}

// TestGCPPubSubExtensionFailureLogged: extensions that fail (the
// subscription was deleted) are logged once, naming the subscription.
func TestGCPPubSubExtensionFailureLogged(t *testing.T) {
	ps := pubsubServer
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	logged := driverlog.With(ctx, service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil))))
	name, sub := openGCP(t, logged, "held")
	defer sub.Shutdown(ctx)
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	ps.DeleteSubscription(t, name)
	queues.Eventually(t, ctx, "the failure logged", func() bool { return strings.Contains(logs.String(), "extending the ack deadline") })
	// Several more extensions fail the same way, unlogged.
	calls := ps.Calls("ModifyAckDeadline")
	queues.Eventually(t, ctx, "more extensions", func() bool { return ps.Calls("ModifyAckDeadline") >= calls+3 })
	if n := strings.Count(logs.String(), "extending the ack deadline"); n != 1 {
		t.Fatalf("the failure logged %d times, want once:\n%s", n, logs)
	}
	if want := "projects/" + ps.Project + "/subscriptions/" + name; !strings.Contains(logs.String(), want) {
		t.Fatalf("the log does not name %s:\n%s", want, logs)
	}
}

// openGCP publishes bodies to a new topic of the package's server, whose
// subscription has a 10 s ack deadline, and opens that subscription through
// gcppubsub with room for all of them; ctx carries the logger, if any.
func openGCP(t *testing.T, ctx context.Context, bodies ...string) (string, *Subscription) {
	t.Helper()
	ps := pubsubServer
	name := ps.Name(t)
	ps.CreateTopic(t, name, name, 10*time.Second)
	for _, b := range bodies {
		ps.Publish(t, name, []byte(b), nil)
	}
	sub, err := Open(ctx, "gcppubsub://"+ps.Project+"/"+name, len(bodies))
	if err != nil {
		t.Fatal(err)
	}
	return name, sub
}

// extendedSince is whether the message of body data was given a new
// deadline since t.
func extendedSince(ps *queues.PubSub, topic string, data []byte, t time.Time) bool {
	for _, mod := range ps.Modacks(topic, data) {
		if mod.AckDeadline > 0 && mod.ReceivedAt.After(t) {
			return true
		}
	}
	return false
}

// syncBuffer is a log sink written by the extension loop and read by the
// test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSubscriptionPath: the extensions name the subscription gocloud's
// URL opener opened, in either of its forms.
func TestSubscriptionPath(t *testing.T) {
	for raw, want := range map[string]string{
		"gcppubsub://my-project/my-sub":                        "projects/my-project/subscriptions/my-sub",
		"gcppubsub://projects/my-project/subscriptions/my-sub": "projects/my-project/subscriptions/my-sub",
		"gcppubsub://my-project/my-sub?max_recv_batch_size=10": "projects/my-project/subscriptions/my-sub",
		"gcppubsub://projects/p/subscriptions/s?nacklazy=true": "projects/p/subscriptions/s",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := subscriptionPath(u); got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
	}
}
