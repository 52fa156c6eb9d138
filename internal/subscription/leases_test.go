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
