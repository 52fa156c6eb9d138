package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/internal/subscription"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := brokerNotified(t, ctx, "rabbit://notices", r.Publish)
	// Nothing is read yet: the consumer takes its two and no more.
	pollUntil(t, "the consumer takes notifications", func() bool { return r.State(t, "notices").Ready <= 8 })
	if s := r.State(t, "notices"); s.Ready != 8 || s.Consumers != 1 {
		t.Fatalf("queue %+v with one reader, want 8 ready (2 held) and 1 consumer", s)
	}
	readAllThenClose(t, ctx, in)
	// Every notification acknowledged, and the consumer gone.
	if s := r.State(t, "notices"); s.Ready != 0 || s.Consumers != 0 {
		t.Fatalf("queue %+v after every object was read and the input closed, want 0 ready and no consumer", s)
	}
}
