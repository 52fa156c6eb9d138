package brazecurrents

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// heldRun is an input in notification mode over an S3 stand-in whose GETs
// of the objects are refused while refusing is set, on a fake clock, with
// one reader: the notifications it holds back and settles come on held and
// settled.
type heldRun struct {
	t        *testing.T
	in       *currentsInput
	clock    *clockwork.FakeClock
	keys     []string
	want     []map[string]bool // each key's event ids
	refusing atomic.Bool
	gets     map[string]*atomic.Int32 // GETs of each key
	held     chan heldNotice
	settled  chan bool
	logs     *lineSink
	ctx      context.Context
}

// heldRuns numbers the heldRuns of the process.
var heldRuns atomic.Int32

type heldNotice struct {
	key string
	d   time.Duration
}

// notifyQueue is a queue for heldRun: its subscription URL (queue is the
// name of the test's own), and how to publish to it once the input is
// connected.
type notifyQueue func(t *testing.T, queue string) (url string, publish func(body []byte, attrs map[string]string))

// overPubSub is the Pub/Sub test server, whose client holds at most two
// notifications a reader.
func overPubSub(ps **queues.PubSub, topic *string) notifyQueue {
	return func(t *testing.T, _ string) (string, func([]byte, map[string]string)) {
		pubsubOnce.Do(func() {
			sharedPubSub = queues.NewPubSub()
			_ = os.Setenv("PUBSUB_EMULATOR_HOST", sharedPubSub.Addr)
		})
		*ps, *topic = sharedPubSub, sharedPubSub.Name(t)
		sharedPubSub.CreateTopic(t, *topic, *topic, 10*time.Second)
		return sharedPubSub.SubscriptionURL(*topic), func(body []byte, attrs map[string]string) { sharedPubSub.Publish(t, *topic, body, attrs) }
	}
}

// overMem is an in-process topic, from which the input takes whatever it
// asks for: only the input bounds what it holds.
func overMem(t *testing.T, queue string) (string, func([]byte, map[string]string)) {
	topic, err := pubsub.OpenTopic(context.Background(), "mem://"+queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topic.Shutdown(context.Background()) })
	return "mem://" + queue, func(body []byte, attrs map[string]string) {
		if err := topic.Send(context.Background(), &pubsub.Message{Body: body, Metadata: attrs}); err != nil {
			t.Error(err)
		}
	}
}

// startHeld uploads objects fixtures and connects the input to queue,
// with read_attempts 1 (no backoff between attempts).
func startHeld(t *testing.T, objects int, queue notifyQueue) (*heldRun, func(key string)) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // bounds a failure
	t.Cleanup(cancel)
	r := &heldRun{t: t, clock: clockwork.NewFakeClockAt(at14(0)), gets: map[string]*atomic.Int32{},
		held: make(chan heldNotice, 100), settled: make(chan bool, 100), logs: newLineSink(), ctx: ctx}
	for i := range objects {
		spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: strings.Repeat(string(rune('a'+i)), 24), Records: 3, Seed: uint64(80 + i), DateHour: at14(0).Add(-time.Hour)}
		r.want = append(r.want, uploadFixture(t, b, spec))
		r.keys = append(r.keys, fixtures.Key(spec))
		r.gets[fixtures.Key(spec)] = &atomic.Int32{}
	}
	r.refusing.Store(true)
	proxied := proxyS3(t, b, func(w http.ResponseWriter, req *http.Request, forward http.Handler) {
		for key, n := range r.gets {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/"+key) {
				n.Add(1)
				if r.refusing.Load() {
					denyS3(w)
					return
				}
			}
		}
		forward.ServeHTTP(w, req)
	})
	// mem:// topics outlive their shutdown, by name: one a run (-count).
	url, publish := queue(t, fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), heldRuns.Add(1)))
	in, err := inputOf(t, "url: \""+proxied+"\"\nnotifications: "+url+"\nread_attempts: 1\nmax_parallel_objects: 1\nprogress_interval: 0s", r.logs.resources())
	if err != nil {
		t.Fatal(err)
	}
	r.in, in.clock = in, r.clock
	// Never blocking the input: a run gone wrong (sending back at once,
	// hundreds of times) fails the test rather than hanging its Close.
	in.noticeSettled = func(_ *pubsub.Message, acked bool) {
		select {
		case r.settled <- acked:
		default:
		}
	}
	in.noticeHeldBack = func(key string, d time.Duration) {
		select {
		case r.held <- heldNotice{key, d}:
		default:
		}
	}
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return r, func(key string) {
		publish([]byte(`{"kind":"storage#object","name":"`+key+`"}`), map[string]string{"bucketId": b.Name, "objectId": key, "eventType": "OBJECT_FINALIZE"})
	}
}

func (r *heldRun) nextHeld() heldNotice { return next(r, r.held, "no notification held back") }

func (r *heldRun) nextSettled() bool { return next(r, r.settled, "no notification settled") }

// next is what c gives, failing r's test with none if its time runs out.
func next[T any](r *heldRun, c <-chan T, none string) T {
	r.t.Helper()
	select {
	case v := <-c:
		return v
	case <-r.ctx.Done():
		r.t.Fatal(none)
		var zero T
		return zero
	}
}

// readAcked reads object i's events, acknowledges them, and expects its
// notification acknowledged.
func (r *heldRun) readAcked(i int) {
	r.t.Helper()
	for got := 0; got < len(r.want[i]); {
		batch, ack, err := r.in.ReadBatch(r.ctx)
		if err != nil {
			r.t.Fatalf("after %d of %d events: %v", got, len(r.want[i]), err)
		}
		if key, _ := batch[0].MetaGet(MetaKey); key != r.keys[i] {
			r.t.Fatalf("events of %s, want %s's", key, r.keys[i])
		}
		got += len(batch)
		_ = ack(r.ctx, nil)
	}
	if !r.nextSettled() {
		r.t.Fatalf("%s's notification sent back, want it acknowledged", r.keys[i])
	}
}

// An object that cannot be read holds its notification before sending it
// back, twice as long as it has been failing (10 s to 15 min, on the
// input's clock): unreadable for half an hour, the queue delivered its
// notification 7 times, not once every read's backoff (about 8 s with the
// default read_attempts: 10 deliveries, Service Bus's default
// MaxDeliveryCount, in a minute and a half). Meanwhile another object's
// notification is read, with the one reader. Once readable, the object is
// read and its notification acknowledged.
func TestNotificationUnreadableObjectSentBack(t *testing.T) {
	var ps *queues.PubSub
	var topic string
	r, publish := startHeld(t, 2, overPubSub(&ps, &topic))
	bad := r.keys[0]
	publish(bad)
	var elapsed time.Duration // on the fake clock, since the first failure
	failed := 0
	for {
		h := r.nextHeld()
		failed++
		if h.key != bad || h.d != sendBackDelay(elapsed) {
			t.Fatalf("delivery %d: %s held %v, want %s held %v", failed, h.key, h.d, bad, sendBackDelay(elapsed))
		}
		if failed == 1 { // a healthy object is not kept waiting
			r.refusing.Store(false)
			publish(r.keys[1])
			r.readAcked(1)
			r.refusing.Store(true)
		}
		if elapsed+h.d >= 30*time.Minute {
			break
		}
		r.clock.Advance(h.d)
		elapsed += h.d
		if r.nextSettled() {
			t.Fatalf("delivery %d acknowledged while its object could not be read", failed)
		}
	}
	// 0, 10 s, 30 s, 1m30, 4m30, 13m30, 28m30.
	if got := r.gets[bad].Load(); failed != 7 || got != 7 {
		t.Fatalf("%d deliveries held back, %d reads in %v, want 7", failed, got, elapsed)
	}
	r.refusing.Store(false)
	r.clock.Advance(sendBackDelay(elapsed))
	if r.nextSettled() {
		t.Fatal("the notification held back was acknowledged, not sent back")
	}
	r.readAcked(0)
	body := []byte(`{"kind":"storage#object","name":"` + bad + `"}`)
	if n := ps.Deliveries(topic, body); n != 8 {
		t.Fatalf("the queue delivered the notification %d times, want 8", n)
	}

	logs := r.logs
	errs := logs.matching("level=ERROR")
	if len(errs) != 1 || !strings.Contains(errs[0], bad) || !strings.Contains(errs[0], "sending its notification back to gcppubsubv2://") ||
		!strings.Contains(errs[0], " in 10s: ") || !strings.Contains(errs[0], "MaxDeliveryCount") {
		t.Fatalf("want one error naming %s, the queue it goes back to, when, and its dead-letter limit:\n%s", bad, logs)
	}
	if n := logs.count("next pass"); n != 0 {
		t.Fatalf("%d lines speak of a next pass, which notifications do not have:\n%s", n, logs)
	}
	if logs.count("level=DEBUG", bad, "still cannot be read", "failing for 28m30s", "sending its notification back", "in 15m0s") != 1 {
		t.Fatalf("no debug line for the deliveries that failed again:\n%s", logs)
	}
	if logs.count("level=INFO", bad, "was read at last, after failing for 43m30s") != 1 {
		t.Fatalf("no info line once it was read:\n%s", logs)
	}
}

// Stopping the input sends a notification held back at once, before Close
// returns: the queue delivers it again, here to another input, which reads
// the object.
func TestNotificationHeldBackSentBackAtStop(t *testing.T) {
	var ps *queues.PubSub
	var topic string
	r, publish := startHeld(t, 1, overPubSub(&ps, &topic))
	publish(r.keys[0])
	if h := r.nextHeld(); h.d != minSendBackDelay {
		t.Fatalf("held back %v, want %v", h.d, minSendBackDelay)
	}
	if err := r.in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case acked := <-r.settled:
		if acked {
			t.Fatal("acknowledged at a stop, unread")
		}
	default:
		t.Fatal("Close returned before the notification held back was sent back")
	}
	// The input's part: the server had the nack (a deadline of 0) before
	// Close returned.
	body := []byte(`{"kind":"storage#object","name":"` + r.keys[0] + `"}`)
	if mods := ps.Modacks(topic, body); len(mods) == 0 || mods[len(mods)-1].AckDeadline != 0 {
		t.Fatalf("the server had no nack of the notification when Close returned: %+v", mods)
	}
	// Pub/Sub's part: Google's client nacks as it ends its stream, and a
	// server that has not seen the end yet may deliver the notification onto
	// that stream again, where it waits out the stream's 60 s deadline
	// (docs/input.md; one run in some hundreds under load): the server's
	// clock is moved past it.
	ps.Advance(time.Minute + time.Second)
	r.refusing.Store(false)
	next, err := inputOf(t, "url: \""+r.in.conf.url+"\"\nnotifications: "+r.in.conf.notifications, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	next.noticeSettled = func(_ *pubsub.Message, acked bool) { r.settled <- acked }
	if err := next.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Close(context.Background()) })
	r.in = next
	r.readAcked(0)
}

// In an outage where every object fails, the input holds back at most two
// notifications a reader and takes no more from the queue until one is sent
// back, rather than running through the queue. The in-process queue gives
// whatever it is asked for: only the input bounds it.
func TestNotificationsHeldBackBoundWhatIsTaken(t *testing.T) {
	r, publish := startHeld(t, 3, overMem)
	for _, key := range r.keys {
		publish(key)
	}
	first := map[string]bool{r.nextHeld().key: true, r.nextHeld().key: true}
	// The warning is logged just after the input marks itself full, out of
	// its lock: waiting for the mark alone, the log was read too soon.
	pollUntil(t, "the input stops receiving and says so", func() bool {
		r.in.back.mu.Lock()
		full := r.in.back.full
		r.in.back.mu.Unlock()
		return full && r.logs.count("level=WARN", "Receiving no notifications while 2 held back") > 0
	})
	var third string
	for _, key := range r.keys {
		if !first[key] {
			third = key
		}
	}
	if len(first) != 2 || r.gets[third].Load() != 0 {
		t.Fatalf("held back %v, and %s read %d times, want it waiting in the queue", first, third, r.gets[third].Load())
	}
	if r.logs.count("level=WARN", "Receiving no notifications while 2 held back") != 1 {
		t.Fatalf("no warning that the input stopped receiving:\n%s", r.logs)
	}
	// Sent back, the first two make room: the third is read at last.
	for h := (heldNotice{d: minSendBackDelay}); h.key != third; h = r.nextHeld() {
		r.clock.Advance(h.d)
	}
}
