package brazecurrents

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// A holder that stalls past its lease (a long pause, a frozen VM) while
// another process takes the checkpoint over reads the checkpoint back before
// its next write, and stops: it does not write over the new holder's
// progress, which would send the new holder's objects again and stop the new
// holder instead.
func TestCheckpointSaverStalledPastItsLeaseStopsBeforeWriting(t *testing.T) {
	ctx := context.Background()
	store := memStore{}
	a := leaseSaver(t, store, at(14))
	acquireOn(t, a)
	a.ckpt.finished(hourObj("p", at(13), 0))
	if err := a.write(ctx, false); err != nil {
		t.Fatal(err)
	}

	// a stalls (its clock stands still) and b, started after a's lease ran
	// out, takes the checkpoint and records an object of its own.
	b := leaseSaver(t, store, at(14).Add(2*time.Minute))
	acquireOn(t, b)
	b.ckpt.finished(hourObj("p", at(13), 1))
	if err := b.write(ctx, false); err != nil {
		t.Fatal(err)
	}

	// a resumes before its renewal timer fires and finishes another object:
	// its run loop reads the checkpoint back, reports the loss and returns.
	a.clock.(*clockwork.FakeClock).Advance(2*time.Minute + a.settle())
	lost := make(chan error, 1)
	a.onLost = func(err error) { lost <- err }
	go a.run(ctx)
	a.ckpt.finished(hourObj("p", at(13), 2))
	a.poke()
	waitLost(t, a, lost, "the stalled holder")
	doc := storedDoc(t, b)
	if doc.Owner == nil || doc.Owner.ID != b.me.ID || !slices.Contains(doc.Partitions["p"].Done, hourObj("p", at(13), 1).key) {
		t.Fatalf("the new holder's checkpoint was overwritten: owner %v, done %v", doc.Owner, doc.Partitions["p"].Done)
	}

	// A stalled holder that is shut down on resuming (a rolling update) does
	// not release the new holder's lease either.
	c := leaseSaver(t, store, at(14).Add(3*time.Minute))
	acquireOn(t, c)
	b.clock.(*clockwork.FakeClock).Advance(2 * time.Minute)
	if err := b.release(ctx); !errors.Is(err, errCheckpointHeld) {
		t.Fatalf("a stalled holder's release over another's lease: %v", err)
	}
	if doc := storedDoc(t, c); doc.Owner == nil || doc.Owner.ID != c.me.ID {
		t.Fatalf("the stalled holder's release took the lease from the new holder: owner %v", doc.Owner)
	}

	// A holder whose lease lapsed while no one took over still writes.
	d := leaseSaver(t, memStore{}, at(15))
	acquireOn(t, d)
	d.clock.(*clockwork.FakeClock).Advance(time.Hour)
	d.ckpt.finished(hourObj("p", at(14), 0))
	if err := d.write(ctx, false); err != nil {
		t.Fatalf("a lapsed lease no one took: %v", err)
	}
	if doc := storedDoc(t, d); len(doc.Partitions["p"].Done) != 1 {
		t.Fatalf("the write after a lapse was not stored: %v", doc.Partitions)
	}
}

// failingStore is a memStore whose writes fail while down is set.
type failingStore struct {
	memStore
	down *bool
}

func (f failingStore) put(ctx context.Context, key string, v []byte) error {
	if *f.down {
		return errors.New("503 slow down")
	}
	return f.memStore.put(ctx, key, v)
}

// A holder whose lease renewals fail (the store rejects its writes for a
// while) has let its lease lapse in the store, though it goes on reading.
// Another process takes the checkpoint over. When the store recovers, the
// first holder's next write must read the checkpoint back, as after a
// stall, and not write over the new holder's claim and progress (docs:
// "it does not write over the new holder's progress").
func TestCheckpointSaverFailedRenewalsDoNotExtendTheLease(t *testing.T) {
	ctx := context.Background()
	store := memStore{}
	down := false
	a := leaseSaver(t, store, at(14))
	a.store = newSlotted(failingStore{store, &down}, "ck.json", nil)
	acquireOn(t, a) // the stored lease runs to 14:01:00
	a.ckpt.finished(hourObj("p", at(13), 0))
	if err := a.write(ctx, false); err != nil {
		t.Fatal(err)
	}

	// 14:00:50: a's renewal fails; so does the next write of its progress.
	down = true
	a.clock.(*clockwork.FakeClock).Advance(49 * time.Second)
	if err := a.renew(ctx); err == nil {
		t.Fatal("the renewal should have failed")
	}

	// 14:01:30: the stored lease has lapsed; b takes the checkpoint over and
	// records an object of its own.
	b := leaseSaver(t, store, at(14).Add(90*time.Second))
	acquireOn(t, b)
	b.ckpt.finished(hourObj("p", at(13), 1))
	if err := b.write(ctx, false); err != nil {
		t.Fatal(err)
	}

	// 14:01:34: the store takes a's writes again, and a finishes an object.
	down = false
	a.clock.(*clockwork.FakeClock).Advance(44 * time.Second)
	a.ckpt.finished(hourObj("p", at(13), 2))
	err := a.write(ctx, false)
	doc := storedDoc(t, b)
	if doc.Owner == nil || doc.Owner.ID != b.me.ID || !slices.Contains(doc.Partitions["p"].Done, hourObj("p", at(13), 1).key) {
		t.Fatalf("the holder whose lease lapsed in the store wrote over the new holder (its write: %v): owner %v, done %v",
			err, doc.Owner, doc.Partitions["p"].Done)
	}
	if !errors.Is(err, errCheckpointHeld) || !a.isLost() {
		t.Fatalf("the holder whose lease lapsed in the store reported %v, want the checkpoint held by another", err)
	}
}

// leaseSaver is a checkpoint saver with a one-minute lease, as one process,
// on store and a clock of its own at now.
func leaseSaver(t *testing.T, store memStore, now time.Time) *checkpointSaver {
	// As if on a host of its own: a process on this host that is still
	// running would hold its lease past its expiry (heldBy).
	me := ownerStamp{ID: "saver-" + now.Format("150405"), Host: "host-" + now.Format("150405"), PID: 1}
	return &checkpointSaver{ckpt: newCheckpoint(time.Hour, selection{}), store: newSlotted(store, "ck.json", nil),
		log: service.MockResources().Logger(), stats: newInputStats(service.MockResources().Metrics(), service.MockResources().Logger()), clock: clockwork.NewFakeClockAt(now),
		lease: time.Minute, me: me, onLost: func(err error) { t.Errorf("lost: %v", err) },
		wake: make(chan struct{}, 1), onSave: make(chan struct{})}
}

// acquireOn takes the lease, moving the saver's clock past the pause before
// its claim is read back.
func acquireOn(t *testing.T, s *checkpointSaver) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.acquire(context.Background()) }()
	if err := settleClaim(s, done); err != nil {
		t.Fatal(err)
	}
}

// settleClaim moves s's clock past the pause before its claim is read back,
// once acquire (whose result comes on done) waits in it, and returns what
// acquire returned.
func settleClaim(s *checkpointSaver, done <-chan error) error {
	if err := inClaimPause(s, done); err != nil {
		return err
	}
	s.clock.(*clockwork.FakeClock).Advance(s.settle())
	return <-done
}

// inClaimPause waits until acquire (whose result comes on done) waits in
// the pause before its claim is read back. An acquire that returns before
// its pause (the checkpoint is held, say) is an error at once: a test
// fails, not hangs.
func inClaimPause(s *checkpointSaver, done <-chan error) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	paused := make(chan error, 1)
	go func() { paused <- s.clock.(*clockwork.FakeClock).BlockUntilContext(ctx, 1) }()
	select {
	case err := <-done:
		if err == nil {
			err = errors.New("acquire returned before its claim's pause")
		}
		return err
	case <-paused:
		return nil
	}
}

func storedDoc(t *testing.T, s *checkpointSaver) *checkpointDoc {
	t.Helper()
	doc, err := s.loadDoc(context.Background(), false)
	if err != nil || doc == nil {
		t.Fatalf("the stored checkpoint: %v, %v", doc, err)
	}
	return doc
}

// Two processes starting together both find the checkpoint free and both
// claim it: the claim read back after the pause names one of them, and the
// other does not start.
func TestCheckpointSaverTwoClaimsOneHolder(t *testing.T) {
	store := memStore{}
	var meet sync.WaitGroup
	var mu sync.Mutex
	meet.Add(2)
	savers := []*checkpointSaver{leaseSaver(t, store, at(14)), leaseSaver(t, store, at(14).Add(time.Second))}
	results := make([]chan error, len(savers))
	for i, s := range savers {
		s.store = &meetingStore{checkpointStore: s.store, meet: &meet, mu: &mu}
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.acquire(context.Background()) }()
	}
	// Both claims are written before either is read back.
	for i, s := range savers {
		if err := inClaimPause(s, results[i]); err != nil {
			t.Fatalf("saver %d: %v", i, err)
		}
	}
	held := 0
	for i, s := range savers {
		s.clock.(*clockwork.FakeClock).Advance(s.settle())
		err := <-results[i]
		switch {
		case err == nil:
			held++
		case !errors.Is(err, errCheckpointHeld):
			t.Fatalf("saver %d: %v", i, err)
		}
	}
	if held != 1 {
		t.Fatalf("%d processes hold the checkpoint, want 1", held)
	}
}

// meetingStore holds a saver after its first load until another saver's
// first load is done too: both find the checkpoint as it was before either
// claimed it. The savers' stores share mu, as the memStore is not safe for
// concurrent use.
type meetingStore struct {
	checkpointStore
	meet *sync.WaitGroup
	mu   *sync.Mutex
	met  bool
}

func (m *meetingStore) save(ctx context.Context, doc []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkpointStore.save(ctx, doc)
}

func (m *meetingStore) load(ctx context.Context, every bool) ([]byte, error) {
	m.mu.Lock()
	raw, err := m.checkpointStore.load(ctx, every)
	m.mu.Unlock()
	if !m.met {
		m.met = true
		m.meet.Done()
		m.meet.Wait()
	}
	return raw, err
}

// The lease runs out at its expiry instant: another process may take it
// then, not a moment later.
func TestCheckpointLeaseExpiresAtItsInstant(t *testing.T) {
	saver := &checkpointSaver{clock: clockwork.NewFakeClockAt(at(14)), lease: time.Minute, me: newOwner()}
	other := ownerStamp{ID: "elsewhere", Host: "another-host", PID: 1}
	for expires, held := range map[time.Time]bool{at(14): false, at(14).Add(time.Nanosecond): true} {
		other.Expires = expires
		if got := saver.heldBy(&other); got != held {
			t.Errorf("a lease expiring at %v, at %v: held %v, want %v", expires, at(14), got, held)
		}
	}
}

// Progress a failed save did not store is stored by the next write, though
// nothing was done in between: the readers waiting for the store to catch
// up (waitSaved) have no other write coming.
func TestCheckpointSaverWritesAgainAfterAFailedSave(t *testing.T) {
	store := memStore{}
	down := false
	s := leaseSaver(t, store, at(14))
	s.store = newSlotted(failingStore{store, &down}, "ck.json", nil)
	acquireOn(t, s)
	down = true
	o := hourObj("p", at(13), 0)
	s.ckpt.finished(o)
	if err := s.write(context.Background(), false); err == nil {
		t.Fatal("the write to a store that is down should have failed")
	}
	down = false
	if err := s.write(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if doc := storedDoc(t, s); !slices.Contains(doc.Partitions["p"].Done, o.key) {
		t.Fatalf("the write after a failed one did not store the progress: %v", doc.Partitions)
	}
}

// Readers wait while more than the limit of done objects are not in the
// stored checkpoint (what a crash would send again), and go on once a write
// stored them.
func TestCheckpointSaverHoldsReadersBackUntilSaved(t *testing.T) {
	s := leaseSaver(t, memStore{}, at(14))
	acquireOn(t, s)
	for i := range 3 {
		s.ckpt.finished(hourObj("p", at(13), i))
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if s.waitSaved(gone, 1) {
		t.Fatal("a reader went on with 3 done objects unsaved, over a limit of 1")
	}
	if err := s.write(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !s.waitSaved(gone, 1) {
		t.Fatal("a reader waits though every done object is saved")
	}
}

// The lease is renewed every third of it, every time: a holder renewing
// less often lets it lapse, and another process takes the checkpoint over.
func TestCheckpointSaverRenewsEveryThirdOfTheLease(t *testing.T) {
	s := leaseSaver(t, memStore{}, at(14))
	acquireOn(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)
	clock := s.clock.(*clockwork.FakeClock)
	for range 3 {
		if err := clock.BlockUntilContext(ctx, 1); err != nil { // the renewal timer
			t.Fatal(err)
		}
		s.savedMu.Lock()
		saved := s.onSave
		s.savedMu.Unlock()
		clock.Advance(s.lease / 3)
		select {
		case <-saved:
		case <-time.After(time.Minute): // a guard against a hang, not a timing
			t.Fatalf("no renewal %v after the last", s.lease/3)
		}
		if doc := storedDoc(t, s); doc.Owner == nil || !doc.Owner.Expires.Equal(clock.Now().Add(s.lease)) {
			t.Fatalf("at %v the stored lease is %v, want it renewed to %v", clock.Now(), doc.Owner, clock.Now().Add(s.lease))
		}
	}
}

// The first renewal is due a third of the lease after the claim began, as
// each later one is after the last began: timed from the run loop's start,
// past the claim's pause (a second in production), it came that much late.
func TestCheckpointSaverFirstRenewalIsTimedFromTheClaim(t *testing.T) {
	s := leaseSaver(t, memStore{}, at(14))
	acquireOn(t, s) // claimed at 14:00:00, the clock past the pause
	renewed := make(chan struct{}, 1)
	s.renewed = func() { renewed <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)
	clock := s.clock.(*clockwork.FakeClock)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the renewal timer
		t.Fatal(err)
	}
	clock.Advance(at(14).Add(s.lease / 3).Sub(clock.Now()))
	select {
	case <-renewed:
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatalf("no renewal at %v, a third of the lease after the claim", clock.Now())
	}
	if doc := storedDoc(t, s); doc.Owner == nil || !doc.Owner.Expires.Equal(at(14).Add(s.lease/3+s.lease)) {
		t.Fatalf("the stored lease is %v, want it renewed at 14:00:20", doc.Owner)
	}
}
