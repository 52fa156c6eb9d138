package queues

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"gocloud.dev/pubsub"
	_ "gocloud.dev/pubsub/azuresb"
)

// sharedServiceBus serves the tests that open azuresb:// URLs: the driver
// reads SERVICEBUS_CONNECTION_STRING once per process.
var sharedServiceBus = &SharedServiceBus{}

// TestServiceBusGocloudAckNack: gocloud's azuresb driver sends to a topic
// and receives from its subscription, metadata included; an ack completes
// a message, a nack abandons it, and it comes back with its delivery
// counted.
func TestServiceBusGocloudAckNack(t *testing.T) {
	sb := sharedServiceBus.Get(t)
	sb.SetEnv(t)
	topicName := sb.Name(t)
	sb.CreateSubscription(t, topicName, "sub", 0, 0)
	before := sb.Stats(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	topic, err := pubsub.OpenTopic(ctx, sb.TopicURL(topicName))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := &pubsub.Message{Body: fmt.Appendf(nil, "m%d", i), Metadata: map[string]string{"n": strconv.Itoa(i)}}
		if err := topic.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := topic.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := pubsub.OpenSubscription(ctx, sb.SubscriptionURL(topicName, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*pubsub.Message{}
	for len(got) < 3 {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := "m" + m.Metadata["n"]; string(m.Body) != want || got[want] != nil {
			t.Fatalf("received %q with metadata %v", m.Body, m.Metadata)
		}
		got[string(m.Body)] = m
	}
	got["m0"].Ack()
	got["m2"].Ack()
	got["m1"].Nack()
	again, err := sub.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rm *azservicebus.ReceivedMessage
	if string(again.Body) != "m1" || !again.As(&rm) || rm.DeliveryCount != 2 {
		t.Fatalf("after the nack received %q (%+v), want m1 on its second delivery", again.Body, rm)
	}
	again.Ack()
	if err := sub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ms := sb.Messages(t, topicName, "sub"); len(ms) != 0 {
		t.Fatalf("the subscription still holds %+v", ms)
	}
	after := sb.Stats(t)
	if after.Completes-before.Completes != 3 || after.Abandons-before.Abandons != 1 {
		t.Fatalf("%d completes and %d abandons, want 3 and 1", after.Completes-before.Completes, after.Abandons-before.Abandons)
	}
}

// receiveOne receives one message through r.
func receiveOne(t *testing.T, ctx context.Context, r *azservicebus.Receiver) *azservicebus.ReceivedMessage {
	t.Helper()
	for {
		ms, err := r.ReceiveMessages(ctx, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 {
			return ms[0]
		}
	}
}

// onlyMessage is the one message the subscription holds.
func onlyMessage(t *testing.T, sb *ServiceBus, topic, sub string) SBMessage {
	t.Helper()
	ms := sb.Messages(t, topic, sub)
	if len(ms) != 1 {
		t.Fatalf("the subscription holds %+v, want one message", ms)
	}
	return ms[0]
}

// startLocked starts a fake with a subscription s of topic t whose locks
// last lock, sends it one message, and receives it in peek-lock mode.
func startLocked(t *testing.T, lock time.Duration) (*ServiceBus, *azservicebus.Client, *azservicebus.Receiver, *azservicebus.ReceivedMessage) {
	t.Helper()
	sb := StartServiceBus(t)
	sb.CreateSubscription(t, "t", "s", lock, 0)
	sb.Send(t, "t", []byte("hello"))
	client := sb.Client(t)
	r, err := client.NewReceiverForSubscription("t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m := receiveOne(t, ctx, r)
	s := onlyMessage(t, sb, "t", "s")
	if string(m.Body) != "hello" || m.DeliveryCount != 1 || m.LockedUntil == nil || s.State != SBLocked ||
		!s.LockedUntil.Equal(*m.LockedUntil) || s.LockToken != uuidString(m.LockToken) {
		t.Fatalf("received %q, delivery %d, locked until %v with %x; the fake shows %+v", m.Body, m.DeliveryCount, m.LockedUntil, m.LockToken, s)
	}
	return sb, client, r, m
}

func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// waitAvailable waits until the subscription's only message is back, its
// lock expired: available, one delivery counted.
func waitAvailable(t *testing.T, sb *ServiceBus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	Eventually(t, ctx, "the lock to expire", func() bool {
		m := onlyMessage(t, sb, "t", "s")
		return m.State == SBAvailable && m.DeliveryCount == 1
	})
}

// TestServiceBusLockExpires: a message whose lock ends unsettled is
// delivered again, with its delivery counted, under a new lock.
func TestServiceBusLockExpires(t *testing.T) {
	sb, _, r, first := startLocked(t, 2*time.Second)
	waitAvailable(t, sb)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	again := receiveOne(t, ctx, r)
	if *again.SequenceNumber != *first.SequenceNumber || again.DeliveryCount != 2 || again.LockToken == first.LockToken {
		t.Fatalf("redelivered %d (delivery %d, lock %x), want %d on its second delivery under a new lock",
			*again.SequenceNumber, again.DeliveryCount, again.LockToken, *first.SequenceNumber)
	}
	if err := r.CompleteMessage(ctx, again, nil); err != nil {
		t.Fatal(err)
	}
	if ms := sb.Messages(t, "t", "s"); len(ms) != 0 {
		t.Fatalf("the subscription still holds %+v", ms)
	}
}

// TestServiceBusRenewsLocks: renewals every second keep a message with a
// 2 s lock from a second receiver for more than 5 s, each renewal moving
// LockedUntil on; once the message is completed a renewal fails with
// CodeLockLost.
func TestServiceBusRenewsLocks(t *testing.T) {
	sb, client, r, m := startLocked(t, 2*time.Second)
	other, err := client.NewReceiverForSubscription("t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	otherCtx, stopOther := context.WithCancel(ctx)
	stolen := make(chan []*azservicebus.ReceivedMessage, 1)
	go func() {
		ms, _ := other.ReceiveMessages(otherCtx, 1, nil)
		stolen <- ms
	}()
	renew := time.NewTicker(time.Second)
	defer renew.Stop()
	// Well past the 2 s lock, and at least 5 renewals: on a busy
	// machine a renewal may take long enough that fewer ticks fit the time.
	for n, start := 0, time.Now(); n < 5 || time.Since(start) < 5500*time.Millisecond; n++ {
		<-renew.C
		prev := *m.LockedUntil
		if err := r.RenewMessageLock(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		if s := onlyMessage(t, sb, "t", "s"); !m.LockedUntil.After(prev) || s.State != SBLocked || !s.LockedUntil.Equal(*m.LockedUntil) {
			t.Fatalf("renewed from %v to %v; the fake shows %+v", prev, m.LockedUntil, s)
		}
	}
	stopOther()
	if ms := <-stolen; len(ms) != 0 {
		t.Fatalf("the second receiver got %d messages while the lock was renewed", len(ms))
	}
	st := sb.Stats(t)
	if st.Deliveries != 1 || st.Expiries != 0 || st.LocksRenewed < 5 || sb.Renewals(t) != st.LocksRenewed {
		t.Fatalf("stats %+v, want 1 delivery, no expiry, 5 renewals or more", st)
	}
	if s := onlyMessage(t, sb, "t", "s"); s.DeliveryCount != 0 {
		t.Fatalf("the fake shows %+v, want no delivery counted", s)
	}
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	assertLockLost(t, r.RenewMessageLock(ctx, m, nil))
	if ms := sb.Messages(t, "t", "s"); len(ms) != 0 {
		t.Fatalf("the subscription still holds %+v", ms)
	}
}

func assertLockLost(t *testing.T, err error) {
	t.Helper()
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("got %v, want an azservicebus.Error with CodeLockLost", err)
	}
}

// TestServiceBusCompleteAfterLockExpired: completing a message whose lock
// expired fails with CodeLockLost, and the message stays.
func TestServiceBusCompleteAfterLockExpired(t *testing.T) {
	sb, _, r, m := startLocked(t, time.Second)
	waitAvailable(t, sb)
	assertLockLost(t, r.CompleteMessage(t.Context(), m, nil))
	if s := onlyMessage(t, sb, "t", "s"); s.State != SBAvailable || s.DeliveryCount != 1 {
		t.Fatalf("the fake shows %+v, want the message back, one delivery counted", s)
	}
}

// TestServiceBusSettlesOnManagementLink: once the receiving link is gone,
// the SDK completes a message through update-disposition on the
// subscription's $management node, and receives on a new link.
func TestServiceBusSettlesOnManagementLink(t *testing.T) {
	sb, _, r, m := startLocked(t, 0)
	sb.Send(t, "t", []byte("next"))
	sb.DetachReceivers(t, "t", "s")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	if st := sb.Stats(t); st.ManagementSettles != 1 || st.Completes != 1 || st.Detached != 1 {
		t.Fatalf("stats %+v, want the one complete on $management after a detach", st)
	}
	if next := receiveOne(t, ctx, r); string(next.Body) != "next" {
		t.Fatalf("received %q after the detach", next.Body)
	} else if err := r.CompleteMessage(ctx, next, nil); err != nil {
		t.Fatal(err)
	}
	if ms := sb.Messages(t, "t", "s"); len(ms) != 0 {
		t.Fatalf("the subscription still holds %+v", ms)
	}
}

// TestServiceBusReleasesUncounted: what arrives on a receiver's credit
// left after ReceiveMessages the SDK releases, and it comes back with no
// delivery counted.
func TestServiceBusReleasesUncounted(t *testing.T) {
	sb := StartServiceBus(t)
	sb.CreateSubscription(t, "t", "s", 0, 0)
	sb.Send(t, "t", []byte("a"))
	r, err := sb.Client(t).NewReceiverForSubscription("t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ms, err := r.ReceiveMessages(ctx, 10, nil)
	if err != nil || len(ms) != 1 {
		t.Fatalf("received %d messages, %v", len(ms), err)
	}
	sb.Send(t, "t", []byte("b"))
	Eventually(t, ctx, "a release", func() bool { return sb.Stats(t).Releases > 0 })
	b := receiveOne(t, ctx, r)
	if string(b.Body) != "b" || b.DeliveryCount != 1 {
		t.Fatalf("received %q on delivery %d, want b on its first counted", b.Body, b.DeliveryCount)
	}
	for _, m := range []*azservicebus.ReceivedMessage{ms[0], b} {
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServiceBusDeadLetters: abandons count deliveries, and past
// maxDeliveryCount the message is dead-lettered; one dead-lettered by the
// client keeps its reason.
func TestServiceBusDeadLetters(t *testing.T) {
	sb := StartServiceBus(t)
	sb.CreateSubscription(t, "t", "s", 0, 2)
	sb.Send(t, "t", []byte("poison"))
	r, err := sb.Client(t).NewReceiverForSubscription("t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		if m := receiveOne(t, ctx, r); m.DeliveryCount != uint32(i+1) {
			t.Fatalf("delivery %d counted %d", i+1, m.DeliveryCount)
		} else if err := r.AbandonMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := onlyMessage(t, sb, "t", "s"); s.State != SBDeadLettered || s.DeliveryCount != 2 || s.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("after 2 abandons the fake shows %+v", s)
	}
	sb.Send(t, "t", []byte("bad"))
	m := receiveOne(t, ctx, r)
	if err := r.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{Reason: new("invalid")}); err != nil {
		t.Fatal(err)
	}
	if ms := sb.Messages(t, "t", "s"); len(ms) != 2 || ms[1].Body != "bad" || ms[1].DeadLetterReason != "invalid" {
		t.Fatalf("the fake shows %+v", ms)
	}
}

// TestServiceBusUnknownEntity: sending to a topic that does not exist
// fails with amqp:not-found, as Service Bus refuses the link.
func TestServiceBusUnknownEntity(t *testing.T) {
	sb := StartServiceBus(t)
	s, err := sb.Client(t).NewSender("nope", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendMessage(t.Context(), &azservicebus.Message{Body: []byte("x")}, nil)
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Condition != amqp.ErrCondNotFound {
		t.Fatalf("got %v, want amqp:not-found", err)
	}
}
