package subscription

import (
	"context"
	"slices"
	"testing"
	"time"

	"gocloud.dev/pubsub"
)

// recordingService is a leaseService that records what it was asked.
type recordingService struct{ calls [][]string }

func (r *recordingService) leaseID(*pubsub.Message) (string, bool) { return "", false }
func (r *recordingService) modify(_ context.Context, ids []string, _ time.Duration) error {
	r.calls = append(r.calls, slices.Sorted(slices.Values(ids)))
	return nil
}
func (r *recordingService) maxIDs() int                 { return 10 }
func (r *recordingService) failure(error) string        { return "" }
func (r *recordingService) name() (queue, timer string) { return "q", "t" }

// TestLeasesExtendWhatIsDue, on a fake clock: a message whose fetch was
// reported is first extended at the last look before it was held
// leasePeriod (one settled sooner costs no call), one only received as if
// fetched then, then each every renewPeriod while held, not at every look;
// one held already keeps its due time when received again; a call takes
// along, as far as it has room, those due within leasePeriod.
func TestLeasesExtendWhatIsDue(t *testing.T) {
	defer func(p, r time.Duration) { leasePeriod, renewPeriod = p, r }(leasePeriod, renewPeriod)
	leasePeriod, renewPeriod = 3*time.Second, 30*time.Second
	// 10:59:58, so that the looks cross an hour.
	start := time.Date(2026, 12, 3, 10, 59, 58, 0, time.UTC)
	l, svc, clock := fakeLeases(start)
	look := func(at time.Duration, want ...string) {
		t.Helper()
		*clock = start.Add(at)
		before := len(svc.calls)
		l.extend(context.Background())
		var got []string
		for _, c := range svc.calls[before:] {
			got = append(got, c...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at +%v extended %v, want %v", at, got, want)
		}
	}
	l.hold([]string{"a", "b", "quick"}, leasePeriod)
	look(time.Second)
	l.mu.Lock()
	delete(l.held, "quick") // settled within a second
	l.mu.Unlock()
	look(2*time.Second, "a", "b")
	l.hold([]string{"a"}, 0) // gocloud hands it over after fetching it ahead
	look(3 * time.Second)
	look(31 * time.Second)
	look(32*time.Second, "a", "b")
	*clock = start.Add(40 * time.Second)
	l.hold([]string{"c"}, leasePeriod)
	*clock = start.Add(41 * time.Second)
	l.hold([]string{"d"}, leasePeriod)
	look(42*time.Second, "c", "d") // d, due at +43 s, rides along
	look(43 * time.Second)
	l.mu.Lock()
	delete(l.held, "a")
	l.mu.Unlock()
	look(62*time.Second, "b")
	look(72*time.Second, "c", "d")
}

// TestSQSFirstExtensionWithinLeasePeriod, on a fake clock at production
// values: whenever between two looks SQS delivers a message, its first
// extension comes by the time it was held leasePeriod, and not before it
// was held a look less. Before, looks came every leasePeriod and a message
// was extended at the first look after it was held leasePeriod: up to 6 s
// after its delivery, and a queue whose visibility timeout was 5 s
// delivered it again to another consumer while it was still held.
func TestSQSFirstExtensionWithinLeasePeriod(t *testing.T) {
	defer func(p, r time.Duration) { leasePeriod, renewPeriod = p, r }(leasePeriod, renewPeriod)
	leasePeriod, renewPeriod = 3*time.Second, 30*time.Second
	start := time.Date(2026, 12, 3, 10, 59, 58, 0, time.UTC)
	for offset := time.Duration(0); offset < lookPeriod(); offset += lookPeriod() / 10 {
		l, svc, clock := fakeLeases(start)
		fetched := start.Add(offset)
		*clock = fetched
		l.hold([]string{"m"}, leasePeriod) // as openSQS reports a fetch
		for at := start; len(svc.calls) == 0; at = at.Add(lookPeriod()) {
			if at.Before(fetched) {
				continue
			}
			*clock = at
			l.extend(context.Background())
		}
		if held := clock.Sub(fetched); held > leasePeriod || held < leasePeriod-lookPeriod() {
			t.Errorf("delivered %v after a look, first extended once held %v, want between %v and %v",
				offset, held, leasePeriod-lookPeriod(), leasePeriod)
		}
	}
}

// fakeLeases is leases of a recordingService on the clock it returns, set
// at start.
func fakeLeases(start time.Time) (*leases, *recordingService, *time.Time) {
	clock := start
	svc := &recordingService{}
	return &leases{svc: svc, now: func() time.Time { return clock }, held: map[string]time.Time{}, logged: map[string]bool{}},
		svc, &clock
}

// timedService is a recordingService that schedules its own extensions, as
// Service Bus's does, and refuses some IDs once, as a lock lost.
type timedService struct {
	recordingService
	after  time.Duration
	refuse []string
}

func (s *timedService) renewAfter() time.Duration { return s.after }
func (s *timedService) modify(ctx context.Context, ids []string, d time.Duration) error {
	_ = s.recordingService.modify(ctx, ids, d)
	if refuse := s.refuse; refuse != nil {
		s.refuse = nil
		return &sbLost{tokens: refuse}
	}
	return nil
}

// TestLeasesTimedAndRefused, on a fake clock across an hour: a service
// whose locks last what it says is extended every renewAfter, not every
// renewPeriod; of a call that refused some IDs, the others count as
// extended and only the refused are tried again at the next look.
func TestLeasesTimedAndRefused(t *testing.T) {
	defer func(p, r time.Duration) { leasePeriod, renewPeriod = p, r }(leasePeriod, renewPeriod)
	leasePeriod, renewPeriod = time.Second, 30*time.Second
	start := time.Date(2026, 12, 3, 10, 59, 58, 0, time.UTC)
	clock := start
	svc := &timedService{after: 2 * time.Second, refuse: []string{"b"}}
	l := &leases{svc: svc, now: func() time.Time { return clock }, held: map[string]time.Time{}, logged: map[string]bool{}}
	look := func(at time.Duration, want ...string) {
		t.Helper()
		clock = start.Add(at)
		before := len(svc.calls)
		l.extend(context.Background())
		var got []string
		for _, c := range svc.calls[before:] {
			got = append(got, c...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at +%v extended %v, want %v", at, got, want)
		}
	}
	l.hold([]string{"a", "b"}, 0)
	look(0, "a", "b") // b refused
	look(time.Second, "b")
	look(2*time.Second, "a")
	look(3*time.Second, "b")
	look(3500 * time.Millisecond)
	look(4*time.Second, "a")
}

// TestServiceBusRenewsAtHalfTheLock: renewals come before half of the
// lock is gone, given that the leases are looked at at least every
// leasePeriod.
func TestServiceBusRenewsAtHalfTheLock(t *testing.T) {
	defer func(p, r time.Duration) { leasePeriod, renewPeriod = p, r }(leasePeriod, renewPeriod)
	leasePeriod, renewPeriod = 3*time.Second, 30*time.Second
	s := &sbLeases{}
	for lock, want := range map[time.Duration]time.Duration{
		5 * time.Minute: 30 * time.Second, 60 * time.Second: 27 * time.Second,
		10 * time.Second: 2 * time.Second, 5 * time.Second: 0, 0: 0,
	} {
		s.lockFor.Store(int64(lock))
		if got := s.renewAfter(); got != want {
			t.Errorf("a lock of %v renewed after %v, want %v", lock, got, want)
		}
	}
}

// receiveBodies receives n messages from sub, by body.
func receiveBodies(t *testing.T, ctx context.Context, sub *Subscription, n int) map[string]*pubsub.Message {
	t.Helper()
	held := map[string]*pubsub.Message{}
	for len(held) < n {
		m, err := sub.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held[string(m.Body)] = m
	}
	return held
}

// TestLeasesSendBackWhatIsFetchedAfterClose: at close what is held is sent
// back, and so is what a fetch still under way at the shutdown reports
// later: before, it was held until the queue's own timeout.
func TestLeasesSendBackWhatIsFetchedAfterClose(t *testing.T) {
	l, svc, _ := fakeLeases(time.Now())
	l.hold([]string{"held"}, leasePeriod)
	l.close()
	l.hold([]string{"late"}, leasePeriod)
	if want := [][]string{{"held"}, {"late"}}; !slices.EqualFunc(svc.calls, want, slices.Equal) {
		t.Fatalf("sent back %v, want %v", svc.calls, want)
	}
	if len(l.held) != 0 {
		t.Fatalf("still held after the shutdown: %v", l.held)
	}
}

// blockingService is a recordingService whose modify waits to be released,
// then notes whether its context had ended.
type blockingService struct {
	recordingService
	started, release chan struct{}
	err              error
}

func (b *blockingService) modify(ctx context.Context, ids []string, d time.Duration) error {
	close(b.started)
	<-b.release
	b.err = ctx.Err()
	return b.recordingService.modify(ctx, ids, d)
}

// TestLeasesStopLetsTheCallUnderWayEnd: a stop does not cancel an extension
// under way. Cancelled, it could still reach the server after the
// shutdown's nacks and hold those messages back for leaseExtension.
func TestLeasesStopLetsTheCallUnderWayEnd(t *testing.T) {
	svc := &blockingService{started: make(chan struct{}), release: make(chan struct{})}
	l := &leases{svc: svc, now: time.Now, held: map[string]time.Time{"a": {}}, logged: map[string]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.extend(ctx); close(done) }()
	<-svc.started
	stop()
	close(svc.release)
	<-done
	if svc.err != nil {
		t.Fatalf("the extension under way was cancelled by the stop: %v", svc.err)
	}
}
