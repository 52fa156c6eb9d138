package brazecurrents

import (
	"context"
	"errors"
	"slices"
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
	select {
	case err := <-lost:
		if !errors.Is(err, errCheckpointHeld) || !a.isLost() {
			t.Fatalf("the stalled holder reported %v, want the checkpoint held by another", err)
		}
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatal("the stalled holder wrote on without noticing the new holder")
	}
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
// "it never writes over the new holder's progress").
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
		log: service.MockResources().Logger(), stats: newInputStats(service.MockResources().Metrics()), clock: clockwork.NewFakeClockAt(now),
		lease: time.Minute, me: me, onLost: func(err error) { t.Errorf("lost: %v", err) },
		wake: make(chan struct{}, 1), onSave: make(chan struct{})}
}

// acquireOn takes the lease, moving the saver's clock past the pause before
// its claim is read back.
func acquireOn(t *testing.T, s *checkpointSaver) {
	t.Helper()
	clock := s.clock.(*clockwork.FakeClock)
	done := make(chan error, 1)
	go func() { done <- s.acquire(context.Background()) }()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(s.settle())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func storedDoc(t *testing.T, s *checkpointSaver) *checkpointDoc {
	t.Helper()
	doc, err := s.loadDoc(context.Background())
	if err != nil || doc == nil {
		t.Fatalf("the stored checkpoint: %v, %v", doc, err)
	}
	return doc
}
