package queue

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/currents-connect/currents-connect/internal/subscription"
	"gocloud.dev/gcerrors"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/driver"
)

// A message the pipeline rejects, from a driver that cannot nack, is read
// again before any new one, and is never acknowledged meanwhile.
func TestInputRetriesWhatTheDriverCannotNack(t *testing.T) {
	d := &noNackSub{queue: make(chan *driver.Message, 2)}
	for i, body := range []string{"first", "second"} {
		d.queue <- &driver.Message{Body: []byte(body), AckID: i}
	}
	in, err := buildInput("url: mem://unused\nmax_in_flight: 2")
	if err != nil {
		t.Fatal(err)
	}
	in.sub = &subscription.Subscription{Subscription: pubsub.NewSubscription(d, nil, nil)}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	m, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ack(ctx, errors.New("downstream refused")); err != nil {
		t.Fatal(err)
	}
	again, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := m.AsBytes()
	if body, _ := again.AsBytes(); string(body) != string(first) {
		t.Fatalf("read %q after %q was rejected, want it again", body, first)
	}
	if n := d.ackedCount(); n != 0 {
		t.Fatalf("%d messages acknowledged, none delivered", n)
	}
	_ = ack(ctx, nil)
}

// noNackSub is a driver that cannot nack, serving the messages of queue.
type noNackSub struct {
	queue chan *driver.Message
	mu    sync.Mutex
	acked int
}

func (s *noNackSub) ReceiveBatch(ctx context.Context, _ int) ([]*driver.Message, error) {
	select {
	case m := <-s.queue:
		return []*driver.Message{m}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *noNackSub) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	s.acked += len(ids)
	s.mu.Unlock()
	return nil
}

func (s *noNackSub) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (*noNackSub) CanNack() bool                                   { return false }
func (*noNackSub) SendNacks(context.Context, []driver.AckID) error { return errors.New("cannot nack") }
func (*noNackSub) IsRetryable(error) bool                          { return false }
func (*noNackSub) As(any) bool                                     { return false }
func (*noNackSub) ErrorAs(error, any) bool                         { return false }
func (*noNackSub) ErrorCode(error) gcerrors.ErrorCode              { return gcerrors.Unknown }
func (*noNackSub) Close() error                                    { return nil }
