package brazecurrents

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/promscrape"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// notified is an input in notification mode on a Pub/Sub test server, over
// a file:// bucket whose directory is named acme-currents.
type notified struct {
	t       *testing.T
	in      *currentsInput
	ps      *queues.PubSub
	topic   string
	written []fixtures.Written
	settled chan settledNotice
	logs    *lineSink
	metrics string // the URL of its /metrics
}

type settledNotice struct {
	object string // the objectId attribute, or the body
	acked  bool
}

// The gcppubsubv2 driver dials PUBSUB_EMULATOR_HOST once per process, so
// the package's tests share one server, each on a topic of its own.
var (
	pubsubOnce   sync.Once
	sharedPubSub *queues.PubSub
)

func startNotified(t *testing.T, opts fixtures.TreeOptions, conf string) *notified {
	t.Helper()
	return startNotifiedVia(t, "gcppubsubv2", opts, conf)
}

// startNotifiedVia reads the notifications through the Pub/Sub driver of
// scheme: gcppubsubv2, or gcppubsub (which the binary links through the
// queue plugin).
func startNotifiedVia(t *testing.T, scheme string, opts fixtures.TreeOptions, conf string) *notified {
	t.Helper()
	pubsubOnce.Do(func() {
		sharedPubSub = queues.NewPubSub()
		_ = os.Setenv("PUBSUB_EMULATOR_HOST", sharedPubSub.Addr)
	})
	ps, topic := sharedPubSub, sharedPubSub.Name(t)
	ps.CreateTopic(t, topic, topic, 10*time.Second)
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	logs := newLineSink()
	res, metrics := promscrape.LoggingResources(t, logs.logger())
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: "+scheme+strings.TrimPrefix(ps.SubscriptionURL(topic), "gcppubsubv2")+"\n"+conf, res)
	if err != nil {
		t.Fatal(err)
	}
	n := &notified{t: t, in: in, ps: ps, topic: topic, written: written, settled: make(chan settledNotice, 100), logs: logs, metrics: metrics}
	in.noticeSettled = func(m *pubsub.Message, acked bool) {
		what := m.Metadata["objectId"]
		if what == "" {
			what = string(m.Body)
		}
		n.settled <- settledNotice{what, acked}
	}
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	return n
}

// publishGCS publishes a GCS notification of key in bucket.
func (n *notified) publishGCS(bucket, key, event string) {
	n.ps.Publish(n.t, n.topic, []byte(`{"kind":"storage#object"}`), map[string]string{"bucketId": bucket, "objectId": key, "eventType": event})
}

// read reads batches until it holds want events, returning their acks.
func (n *notified) read(want int) (ids map[string]int, acks []service.AckFunc) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids = map[string]int{}
	for got := 0; got < want; {
		b, ack, err := n.in.ReadBatch(ctx)
		if err != nil {
			n.t.Fatalf("after %d of %d events: %v", got, want, err)
		}
		for _, m := range b {
			raw, _ := m.AsBytes()
			var ev struct{ ID string }
			_ = json.Unmarshal(raw, &ev)
			ids[ev.ID]++
		}
		got += len(b)
		acks = append(acks, ack)
	}
	return ids, acks
}

// readAcked reads every event of w once, acks them, and expects w's
// notification acknowledged.
func (n *notified) readAcked(w fixtures.Written) {
	n.t.Helper()
	ids, acks := n.read(len(w.Records))
	for _, r := range w.Records {
		if ids[r["id"].(string)] != 1 {
			n.t.Fatalf("event %v read %d times", r["id"], ids[r["id"].(string)])
		}
	}
	for _, ack := range acks {
		_ = ack(context.Background(), nil)
	}
	if s := n.nextSettled(); s.object != w.Key || !s.acked {
		n.t.Fatalf("settled %+v, want %s acknowledged", s, w.Key)
	}
}

func (n *notified) nextSettled() settledNotice {
	n.t.Helper()
	select {
	case s := <-n.settled:
		return s
	case <-time.After(30 * time.Second):
		n.t.Fatal("no notification settled in 30s")
		return settledNotice{}
	}
}

func (n *notified) expectNoSettled() {
	n.t.Helper()
	select {
	case s := <-n.settled:
		n.t.Fatalf("notification %+v settled early", s)
	default:
	}
}

// A notification is acknowledged only once every event of its object was.
func TestNotificationAckedAfterEveryEvent(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 10, Seed: 3}, "batch_size: 3")
	w := n.written[0]
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	ids, acks := n.read(len(w.Records))
	if len(ids) != len(w.Records) {
		t.Fatalf("%d distinct events, want %d", len(ids), len(w.Records))
	}
	for _, ack := range acks[:len(acks)-1] {
		_ = ack(context.Background(), nil)
	}
	n.expectNoSettled()
	_ = acks[len(acks)-1](context.Background(), nil)
	if s := n.nextSettled(); s.object != w.Key || !s.acked {
		t.Fatalf("settled %+v, want %s acknowledged", s, w.Key)
	}
}

// A nacked object sends its notification back: the queue redelivers it and
// the object is read again.
func TestNotificationNackedIsRedelivered(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 4, Seed: 4}, "auto_replay_nacks: false")
	w := n.written[0]
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	_, acks := n.read(len(w.Records))
	for _, ack := range acks {
		_ = ack(context.Background(), errors.New("segment refused"))
	}
	if s := n.nextSettled(); s.object != w.Key || s.acked {
		t.Fatalf("settled %+v, want %s sent back", s, w.Key)
	}
	n.readAcked(w)
}

// A notification naming two objects (an S3 event with two records) is
// acknowledged only if both reads are: one nacked sends it back, whichever
// settles last.
func TestNotificationOfTwoObjectsSentBackWhenOneFails(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"},
		RecordsPerFile: 2, Seed: 11}, "auto_replay_nacks: false")
	record := func(key string) string {
		return `{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"acme-currents"},"object":{"key":"` + url.QueryEscape(key) + `"}}}`
	}
	body := `{"Records":[` + record(n.written[0].Key) + `,` + record(n.written[1].Key) + `]}`
	n.ps.Publish(t, n.topic, []byte(body), nil)
	acks := map[string]service.AckFunc{} // by object
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(acks) < 2 {
		b, ack, err := n.in.ReadBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := b[0].MetaGet(MetaKey)
		if len(b) != 2 || acks[key] != nil {
			t.Fatalf("a batch of %d events of %s, want each object's 2 events in one batch", len(b), key)
		}
		acks[key] = ack
	}
	_ = acks[n.written[0].Key](ctx, errors.New("segment refused"))
	n.expectNoSettled()
	_ = acks[n.written[1].Key](ctx, nil)
	if s := n.nextSettled(); s.object != body || s.acked {
		t.Fatalf("settled %+v, want the notification sent back", s)
	}
}

// Notifications that name nothing to read are acknowledged at once, in
// order, and read nothing: other buckets, other prefixes, other event
// types, deletions, test events and malformed messages.
func TestNotificationSkipsAndAcknowledges(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"},
		RecordsPerFile: 5, Seed: 5}, `include_event_types: ["users.messages.email.*"]`)
	var email, sms fixtures.Written
	for _, w := range n.written {
		if w.Spec.EventType == "users.messages.email.Send" {
			email = w
		} else {
			sms = w
		}
	}
	n.publishGCS("other-bucket", email.Key, "OBJECT_FINALIZE")
	n.publishGCS("acme-currents", "elsewhere/"+email.Key, "OBJECT_FINALIZE")
	n.publishGCS("acme-currents", sms.Key, "OBJECT_FINALIZE")
	n.publishGCS("acme-currents", email.Key, "OBJECT_DELETE")
	n.publishGCS("acme-currents", strings.TrimSuffix(email.Key, ".avro")+".json", "OBJECT_FINALIZE")
	n.ps.Publish(t, n.topic, []byte(`{"Event":"s3:TestEvent"}`), nil)
	n.ps.Publish(t, n.topic, []byte(`not a notification`), nil)
	for range 7 {
		if s := n.nextSettled(); !s.acked {
			t.Fatalf("%+v sent back", s)
		}
	}
	// Only the one it did not understand is malformed: the others name
	// something it was told not to read.
	if got, _ := promscrape.Get(t, n.metrics).Counter("braze_currents_notifications_malformed", "", ""); got != 1 {
		t.Fatalf("braze_currents_notifications_malformed %v, want 1", got)
	}
	if n.logs.count("level=WARN", "Acknowledging malformed notification") != 1 {
		t.Fatalf("want one warning for the malformed notification:\n%s", n.logs)
	}
	n.publishGCS("acme-currents", email.Key, "OBJECT_FINALIZE")
	n.readAcked(email)
}

// An SNS topic of another account that subscribed the queue sends it a
// SubscriptionConfirmation first: until someone confirms it, none of the
// topic's notifications arrive. It was acknowledged as a malformed
// notification, which hid why nothing came; it is warned of, naming the
// topic, and its token is not logged.
func TestNotificationSNSSubscriptionConfirmationWarns(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 2, Seed: 13}, "")
	for _, fixture := range []string{"sns_subscription_confirmation", "sns_unsubscribe_confirmation"} {
		body, _ := noticeFixture(t, fixture)
		n.ps.Publish(t, n.topic, body, nil)
		if s := n.nextSettled(); !s.acked {
			t.Fatalf("%s sent back", fixture)
		}
	}
	const topic = "arn:aws:sns:eu-west-1:444455556666:currents-created"
	if n.logs.count("level=WARN", topic, "asks to confirm this queue's subscription") != 1 ||
		n.logs.count("level=WARN", topic, "subscription to it was deleted") != 1 {
		t.Fatalf("want a warning for each, naming the topic:\n%s", n.logs)
	}
	if n.logs.count("malformed") != 0 || n.logs.count("exampletoken") != 0 {
		t.Fatalf("called malformed, or its token logged:\n%s", n.logs)
	}
	n.publishGCS("acme-currents", n.written[0].Key, "OBJECT_FINALIZE")
	n.readAcked(n.written[0])
}

func TestNotificationConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ conf, want string }{
		"shard":         {"shard: 1/3", "shard cannot be used with notifications"},
		"checkpoint":    {"checkpoint: {in_bucket: true}", "checkpoint cannot be used with notifications"},
		"cache":         {"checkpoint: {cache: c}", "checkpoint cannot be used with notifications"},
		"unknown queue": {"", `unknown scheme "kafka", this build opens awssqs, azuresb, gcppubsub, gcppubsubv2, mem`}, // as the binary, which links gcppubsub through the queue plugin
	} {
		queue := "mem://topic"
		if name == "unknown queue" {
			queue = "kafka://group?topic=x"
		}
		_, err := inputOf(t, "url: file:///tmp\nnotifications: "+queue+"\n"+tc.conf, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestNoticeBucketNames(t *testing.T) {
	for url, want := range map[string]string{
		"s3://acme?region=eu-west-1":  "acme",
		"gs://acme":                   "acme",
		"azblob://currents":           "currents",
		"file:///data/acme-currents/": "acme-currents",
		"file://./acme":               "acme",
	} {
		if got := noticeBucket(url); got != want {
			t.Errorf("%s: %q, want %q", url, got, want)
		}
	}
}

// An input stopped while a notification's object waits for a reader sends
// the notification back: its object was not read. So is the one whose object
// was being read. Both are delivered again at once: nacked before the stop
// began, they were nacked on the streaming pull about to close, which took
// them again, or dropped by the client as the stream closed, and waited out
// the stream's ack deadline.
func TestNotificationWaitingForAReaderAtStopIsSentBack(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"},
		RecordsPerFile: 2, Seed: 12}, "max_parallel_objects: 1\nauto_replay_nacks: false")
	w, x := n.written[0], n.written[1]
	// The one reader takes w and waits for the pipeline, which reads nothing;
	// x's notification then waits for the reader.
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	n.publishGCS("acme-currents", x.Key, "OBJECT_FINALIZE")
	for waited := 0; ; waited++ {
		n.in.mu.Lock()
		claimed := n.in.inFlight[w.Key] && n.in.inFlight[x.Key]
		n.in.mu.Unlock()
		if claimed {
			break
		}
		if waited == 3000 {
			t.Fatal("the notifications were never taken")
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not timing a result
	}
	if err := n.in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if s := n.nextSettled(); s.acked {
			t.Fatalf("%+v acknowledged at a stop before its object was read", s)
		}
	}
	// Both are delivered again at once, to the next consumer.
	n.ps.WaitPullsClosed(t, n.topic)
	if got := n.ps.Pull(t, n.topic); len(got) != 2 {
		t.Fatalf("%d notifications pulled right after the stop, want both back", len(got))
	}
}

// A subscription deleted under a running input: each failed receive is
// logged, naming the subscription, and counted in
// braze_currents_notification_receives_failed, which an alert watches
// (before, only the log said that nothing could be received).
func TestNotificationReceiveFailuresCounted(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 2, Seed: 21}, "")
	// Deleted under the input's open streaming pull, which Pub/Sub ends with
	// NOT_FOUND: before, the test raced the delete with the pull's opening,
	// and a pull opened first stayed open and silent on the test server.
	n.ps.WaitPullOpen(t, n.topic)
	n.ps.DeleteSubscription(t, n.topic)
	line := n.logs.waitFor(t, "Receiving notifications from", 1)
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, n.topic) {
		t.Fatalf("want an error naming the subscription %s: %s", n.topic, line)
	}
	if got, _ := promscrape.Get(t, n.metrics).Counter("braze_currents_notification_receives_failed", "", ""); got < 1 {
		t.Fatalf("braze_currents_notification_receives_failed %v, want at least 1", got)
	}
}

// Once the subscription is back, the input says so, once: before, the
// errors just stopped, and the log left the on-call engineer to guess
// whether the queue was read again.
func TestNotificationReceiveRecoveryLogged(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 2, Seed: 22}, "")
	n.ps.DeleteSubscription(t, n.topic)
	n.logs.waitFor(t, "Receiving notifications from", 2)
	n.ps.CreateSubscription(t, n.topic, n.topic, 10*time.Second)
	w := n.written[0]
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	n.read(len(w.Records))
	again := n.logs.matching("works again")
	if len(again) != 1 || !strings.Contains(again[0], "level=INFO") || !strings.Contains(again[0], n.topic) {
		t.Fatalf("want one info line naming %s once it receives again, got:\n%s", n.topic, n.logs)
	}
}
