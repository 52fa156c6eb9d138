package queues

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSRedelivers: the server runs JetStream on its random port, stores
// what is published, and redelivers a message nacked.
func TestNATSRedelivers(t *testing.T) {
	n := StartNATS(t)
	if got := n.Env(); len(got) != 1 || got[0] != "NATS_SERVER_URL="+n.URL() {
		t.Fatalf("Env %v", got)
	}
	n.CreateStream(t, "S", "s.in", "c", 10*time.Second)
	n.Publish(t, "s.in", []byte("hello"), map[string]string{"k": "v"})
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := js.Consumer(ctx, "S", "c")
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data()) != "hello" || m.Headers().Get("k") != "v" {
		t.Fatalf("got %q %v", m.Data(), m.Headers())
	}
	if err := m.Nak(); err != nil {
		t.Fatal(err)
	}
	again, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Data()) != "hello" {
		t.Fatalf("redelivered %q", again.Data())
	}
	if err := again.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if d := n.Deliveries(t, "S", "c"); d != 2 {
		t.Fatalf("%d deliveries, want 2", d)
	}
}
