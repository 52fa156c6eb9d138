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
// reported is first extended once held for leasePeriod (one settled sooner
// costs no call), one only received at the next look (its fetch time is
// unknown), then each every renewPeriod while held, not at every look; one
// held already keeps its due time when received again.
func TestLeasesExtendWhatIsDue(t *testing.T) {
	defer func(p, r time.Duration) { leasePeriod, renewPeriod = p, r }(leasePeriod, renewPeriod)
	leasePeriod, renewPeriod = 3*time.Second, 30*time.Second
	// 10:59:58, so that the looks cross an hour.
	clock := time.Date(2026, 12, 3, 10, 59, 58, 0, time.UTC)
	svc := &recordingService{}
	l := &leases{svc: svc, now: func() time.Time { return clock }, held: map[string]time.Time{}, logged: map[string]bool{}}
	ctx := context.Background()
	look := func(at time.Duration, want ...string) {
		t.Helper()
		clock = time.Date(2026, 12, 3, 10, 59, 58, 0, time.UTC).Add(at)
		before := len(svc.calls)
		l.extend(ctx)
		var got []string
		for _, c := range svc.calls[before:] {
			got = append(got, c...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at +%v extended %v, want %v", at, got, want)
		}
	}
	l.hold([]string{"a", "b", "quick"}, leasePeriod)
	l.hold([]string{"pulled"}, 0)
	look(time.Second, "pulled")
	l.mu.Lock()
	delete(l.held, "quick") // settled within a second
	l.mu.Unlock()
	look(3*time.Second, "a", "b")
	l.hold([]string{"a"}, 0) // gocloud hands it over after fetching it ahead
	look(6 * time.Second)
	look(30 * time.Second)
	look(31*time.Second, "pulled")
	look(33*time.Second, "a", "b")
	l.mu.Lock()
	delete(l.held, "a")
	l.mu.Unlock()
	look(63*time.Second, "b", "pulled")
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
// lock is gone, given that the leases are looked at every leasePeriod.
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
