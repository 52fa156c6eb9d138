package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/internal/subscription"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// Notifications from RabbitMQ (a store such as MinIO can publish to AMQP)
// are read and acknowledged like the others. The consumer holds at most two
// a reader: gocloud's driver let the broker push the whole queue to it,
// away from other replicas. And it is gone once the input closed: the
// driver left it open, taking and holding notifications until the process
// exited.
func TestNotificationsOverRabbit(t *testing.T) {
	r := queues.StartRabbit(t)
	t.Setenv(subscription.RabbitServerEnv, r.URL())
	r.Declare(t, "notices", "notices", queues.Classic)
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 10, RecordsPerFile: 5, Seed: 5,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range written {
		r.Publish(t, "notices", []byte(`{"kind":"storage#object"}`),
			map[string]string{"bucketId": "acme-currents", "objectId": w.Key, "eventType": "OBJECT_FINALIZE"})
	}
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: rabbit://notices\nmax_parallel_objects: 1\n", service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing is read yet: the consumer takes its two and no more.
	pollUntil(t, "the consumer takes notifications", func() bool { return r.State(t, "notices").Ready <= 8 })
	if s := r.State(t, "notices"); s.Ready != 8 || s.Consumers != 1 {
		t.Fatalf("queue %+v with one reader, want 8 ready (2 held) and 1 consumer", s)
	}
	ids := map[string]int{}
	for len(ids) < 50 {
		b, ack, err := in.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("after %d of 50 events: %v", len(ids), err)
		}
		for _, m := range b {
			v, _ := m.AsStructured()
			ids[v.(map[string]any)["id"].(string)]++
		}
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Every notification acknowledged, and the consumer gone.
	if s := r.State(t, "notices"); s.Ready != 0 || s.Consumers != 0 {
		t.Fatalf("queue %+v after every object was read and the input closed, want 0 ready and no consumer", s)
	}
}

// pollUntil polls the broker's state every 10ms until cond holds (a minute
// bounds a failure).
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
	}
}
