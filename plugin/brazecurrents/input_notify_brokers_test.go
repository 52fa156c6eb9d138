package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// brokerNotified writes ten objects of five events, publishes a GCS
// object-created notification of each through publish (a broker's), and
// connects an input with one reader to the notifications at url.
func brokerNotified(t *testing.T, ctx context.Context, url string, publish func(t testing.TB, to string, data []byte, attrs map[string]string)) *currentsInput {
	t.Helper()
	dir := t.TempDir() + "/acme-currents"
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{FilesPerType: 10, RecordsPerFile: 5, Seed: 5,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range written {
		publish(t, "notices", []byte(`{"kind":"storage#object"}`),
			map[string]string{"bucketId": "acme-currents", "objectId": w.Key, "eventType": "OBJECT_FINALIZE"})
	}
	in, err := inputOf(t, "url: file://"+dir+"\nnotifications: "+url+"\nmax_parallel_objects: 1\n", service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return in
}

// readAllThenClose reads brokerNotified's 50 events, acknowledging each
// batch, and closes the input.
func readAllThenClose(t *testing.T, ctx context.Context, in *currentsInput) {
	t.Helper()
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
