package brazecurrents

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/internal/subscription"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// An object's notification held past RabbitMQ's consumer_timeout (its
// events wait for Segment): the broker closes the channel and delivers the
// notification again on a new one, where another notification, published
// since, took the first one's delivery tag. Once the object's events are
// delivered its notification is settled on its own, closed, channel: before,
// gocloud's driver acknowledged it by tag on the new channel, which
// acknowledged the other notification while its object was still being
// read, and that object was never read again once the input stopped. One
// warning names the queue and the consumer_timeout.
func TestNotificationsOverRabbitOutliveConsumerTimeout(t *testing.T) {
	r := queues.StartRabbitWith(t, queues.ShortConsumerTimeout)
	t.Setenv(subscription.RabbitServerEnv, r.URL())
	r.Declare(t, "notices", "notices", queues.Classic)
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 3, RecordsPerFile: 5, Seed: 5,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	notify := func(key string) {
		r.Publish(t, "notices", []byte(`{"kind":"storage#object"}`),
			map[string]string{"bucketId": "acme-currents", "objectId": key, "eventType": "OBJECT_FINALIZE"})
	}
	res, logs := loggingResources(t)
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: rabbit://notices\nmax_parallel_objects: 1\n", res)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// readObject reads an object's events and returns their acks.
	readObject := func(w fixtures.Written) []service.AckFunc {
		t.Helper()
		var acks []service.AckFunc
		for n := 0; n < len(w.Records); {
			b, ack, err := in.ReadBatch(ctx)
			if err != nil {
				t.Fatalf("reading %s: %v", w.Key, err)
			}
			n += len(b)
			acks = append(acks, ack)
		}
		return acks
	}
	settle := func(acks []service.AckFunc) {
		t.Helper()
		for _, ack := range acks {
			if err := ack(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, w, x := written[0], written[1], written[2]
	notify(v.Key)
	settle(readObject(v)) // delivery tag 1 on the first channel
	notify(w.Key)
	held := readObject(w) // tag 2, held past the consumer_timeout
	// The broker puts w's notification back; the new channel delivers it
	// (tag 1), and the input keeps the copy with the read.
	pollUntil(t, "the copy of w's notification kept", func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		h := in.held[w.Key]
		return h != nil && len(h.copies) == 1
	})
	notify(x.Key)
	readObject(x) // tag 2 on the new channel, held until the stop
	settle(held)  // Segment took w's events at last
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// x's notification is back in the queue: its object will be read.
	if s := r.State(t, "notices"); s != (queues.QueueState{Ready: 1}) {
		t.Errorf("queue %+v once the input stopped during x's read, want x's notification ready and no consumer", s)
	}
	n := 0
	for _, line := range warnings(t, logs) {
		if strings.Contains(line, "rabbit://notices") && strings.Contains(line, "consumer_timeout") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d warnings name rabbit://notices and its consumer_timeout, want 1; warnings: %q", n, warnings(t, logs))
	}
}
