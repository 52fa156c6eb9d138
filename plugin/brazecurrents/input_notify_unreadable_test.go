package brazecurrents

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// With notifications an object that cannot be read sends its notification
// back to the queue, which delivers it again: there is no pass. The error
// says so, and that a queue with a dead-letter limit counts each delivery,
// rather than "leaving it for the next pass; every pass tries it again".
func TestNotificationUnreadableObjectSentBack(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3, Seed: 73, DateHour: at14(0).Add(-time.Hour)}
	want := uploadFixture(t, b, spec)
	key := fixtures.Key(spec)
	var refusing atomic.Bool
	refusing.Store(true)
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if refusing.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+key) {
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	pubsubOnce.Do(func() {
		sharedPubSub = queues.NewPubSub()
		_ = os.Setenv("PUBSUB_EMULATOR_HOST", sharedPubSub.Addr)
	})
	ps, topic := sharedPubSub, sharedPubSub.Name(t)
	ps.CreateTopic(t, topic, topic, 10*time.Second)
	logs := newLineSink()
	in, err := inputOf(t, "url: \""+proxied+"\"\nnotifications: "+ps.SubscriptionURL(topic)+"\nread_attempts: 1\nprogress_interval: 0s", logs.resources())
	if err != nil {
		t.Fatal(err)
	}
	settled := make(chan bool, 100)
	in.noticeSettled = func(_ *pubsub.Message, acked bool) { settled <- acked }
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	ps.Publish(t, topic, []byte(`{"kind":"storage#object"}`), map[string]string{"bucketId": b.Name, "objectId": key, "eventType": "OBJECT_FINALIZE"})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := func() bool {
		t.Helper()
		select {
		case acked := <-settled:
			return acked
		case <-ctx.Done():
			t.Fatal("no notification settled in 30s")
			return false
		}
	}
	for i := range 2 { // sent back, delivered again, sent back again
		if next() {
			t.Fatalf("delivery %d acknowledged while its object could not be read", i+1)
		}
	}
	refusing.Store(false)
	got := 0
	for got < len(want) {
		batch, ack, err := in.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", got, len(want), err)
		}
		got += len(batch)
		_ = ack(ctx, nil)
	}
	for !next() { // deliveries sent back before the GET was allowed
	}

	errs := logs.matching("level=ERROR")
	if len(errs) != 1 || !strings.Contains(errs[0], key) ||
		!strings.Contains(errs[0], "sending its notification back to gcppubsubv2://") || !strings.Contains(errs[0], "MaxDeliveryCount") {
		t.Fatalf("want one error naming %s, the queue it went back to and its dead-letter limit:\n%s", key, logs)
	}
	if n := logs.count("next pass"); n != 0 {
		t.Fatalf("%d lines speak of a next pass, which notifications do not have:\n%s", n, logs)
	}
	if logs.count("level=DEBUG", key, "still cannot be read", "sending its notification back") == 0 {
		t.Fatalf("no debug line for the deliveries that failed again:\n%s", logs)
	}
	if logs.count("level=INFO", key, "was read at last") != 1 {
		t.Fatalf("no info line once it was read:\n%s", logs)
	}
}
