package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
)

// stallingStore holds the next write while stall is set, until resume is
// closed: a save in flight (a slow store, a paused process) while the test
// runs another process.
type stallingStore struct {
	memStore
	stall   *bool
	entered chan struct{}
	resume  chan struct{}
}

func (s stallingStore) put(ctx context.Context, key string, v []byte) error {
	if *s.stall {
		*s.stall = false
		close(s.entered)
		<-s.resume
	}
	return s.memStore.put(ctx, key, v)
}

// A holder whose save is in flight while its lease lapses (a store slow to
// answer, a process paused mid-write) may have its save land after another
// process took the checkpoint over and saved progress of its own. The save
// that landed late makes the holder read the checkpoint back: it stops, and
// does not go on writing over the new holder's progress as if its lease
// were fresh.
func TestCheckpointSaverSaveLandingAfterItsLeaseLapsedReadsBack(t *testing.T) {
	ctx := context.Background()
	store := memStore{}
	stall := false
	gate := stallingStore{memStore: store, stall: &stall, entered: make(chan struct{}), resume: make(chan struct{})}
	a := leaseSaver(t, store, at(14))
	a.store = newSlotted(gate, "ck.json", nil)
	acquireOn(t, a) // the stored lease runs to 14:01:00
	a.ckpt.finished(hourObj("p", at(13), 0))
	if err := a.write(ctx, false); err != nil {
		t.Fatal(err)
	}

	// 14:00:40: a renews its lease, and the store holds the write.
	a.clock.(*clockwork.FakeClock).Advance(39 * time.Second)
	stall = true
	renewed := make(chan error, 1)
	go func() { renewed <- a.renew(ctx) }()
	<-gate.entered

	// 14:01:30: the stored lease has lapsed; b takes the checkpoint over and
	// saves an object of its own.
	b, mine := takeOver(t, store, at(14).Add(90*time.Second))

	// 14:01:35: a's renewal lands at last, then a finishes an object.
	a.clock.(*clockwork.FakeClock).Advance(55 * time.Second)
	close(gate.resume)
	renewErr := <-renewed
	a.ckpt.finished(hourObj("p", at(13), 2))
	err := a.write(ctx, false)
	doc := storedDoc(t, b)
	if doc.Owner == nil || doc.Owner.ID != b.me.ID || !slices.Contains(doc.Partitions["p"].Done, mine.key) {
		t.Fatalf("the holder whose save landed after its lease lapsed wrote over the new holder (renewal: %v, write: %v): owner %v, done %v",
			renewErr, err, doc.Owner, doc.Partitions["p"].Done)
	}
	if !errors.Is(renewErr, errCheckpointHeld) || !errors.Is(err, errCheckpointHeld) || !a.isLost() {
		t.Fatalf("the holder whose save landed after its lease lapsed: renewal %v, write %v; want the checkpoint held by another", renewErr, err)
	}
}

// A holder that renews its lease and then cannot read one of the two slots
// for a moment (a timeout, a 503) cannot tell who holds the checkpoint: the
// slot it could read may be the older one, still naming the previous
// holder. It tries again rather than take the checkpoint for lost, which
// stops the input.
func TestCheckpointSaverUnreadableSlotIsNoVerdict(t *testing.T) {
	ctx := context.Background()
	store := memStore{}
	a := leaseSaver(t, store, at(14))
	acquireOn(t, a) // save 1, slot b
	a.ckpt.finished(hourObj("p", at(13), 0))
	if err := a.write(ctx, false); err != nil { // save 2, slot a
		t.Fatal(err)
	}
	if err := a.release(ctx); err != nil { // a rolling update: a stops (save 3, slot b)
		t.Fatal(err)
	}
	b := leaseSaver(t, store, at(14).Add(time.Minute))
	acquireOn(t, b) // save 4, slot a
	if doc, err := b.ckpt.parse(store["ck.a.json"]); err != nil || doc.Owner == nil || doc.Owner.ID != b.me.ID {
		t.Fatalf("b's claim is not in slot a: %v, %v", doc, err)
	}
	b.store.(*slotted).store = unreadableA{store}
	err := b.verify(ctx)
	if errors.Is(err, errCheckpointHeld) || b.isLost() || err == nil {
		t.Fatalf("b, unable to read its own claim's slot, concluded %v (lost %v); want an error to try again", err, b.isLost())
	}
	b.store.(*slotted).store = store
	if err := b.verify(ctx); err != nil || b.isLost() {
		t.Fatalf("b, with both slots readable again: %v (lost %v)", err, b.isLost())
	}
}

// TestSlottedStartPassesOverASlotKilledMidWrite: a kill during a save to a
// file:// bucket can leave the slot written with an empty attributes file,
// which fileblob cannot read (EOF) until the slot is written again. At start
// the other slot is used, and the claim rewrites the damaged one; verifying
// (every slot read) fails meanwhile rather than conclude. Before, the start
// failed on it too, and Connect retried it for ever (TestKill9ThenResume, one
// run in three).
func TestSlottedStartPassesOverASlotKilledMidWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bucket, err := blob.OpenBucket(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	s := newSlotted(&bucketStore{bucket: bucket}, "ck.json", nil)
	for n := 1; n <= 2; n++ { // slots b, then a
		if err := s.save(ctx, []byte(fmt.Sprintf(`{"version":1,"n":%d}`, n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(filepath.Join(dir, "ck.a.json.attrs"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := newSlotted(&bucketStore{bucket: bucket}, "ck.json", nil).load(ctx, true); err == nil {
		t.Fatal("read with every slot, the damaged slot was passed over")
	}
	start := newSlotted(&bucketStore{bucket: bucket}, "ck.json", nil)
	raw, err := start.load(ctx, false)
	if err != nil || !strings.Contains(string(raw), `"n":1`) {
		t.Fatalf("at start loaded %s, %v; want the other slot's save", raw, err)
	}
	if err := start.save(ctx, []byte(`{"version":1,"n":3}`)); err != nil { // the claim
		t.Fatal(err)
	}
	if raw, err := start.load(ctx, true); err != nil || !strings.Contains(string(raw), `"n":3`) {
		t.Fatalf("after the claim loaded %s, %v", raw, err)
	}
}

// hangingStore is a memStore whose next hangs calls of op ("get" or "put";
// "" for both) hang until their context ends: a store that took the request
// and never answers (a silent connection, a hung proxy).
type hangingStore struct {
	memStore
	op      string
	hangs   *int
	entered chan struct{}
}

func (s hangingStore) hang(ctx context.Context, op string) error {
	if s.op != "" && op != s.op || *s.hangs == 0 {
		return nil
	}
	*s.hangs--
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (s hangingStore) get(ctx context.Context, key string) ([]byte, error) {
	if err := s.hang(ctx, "get"); err != nil {
		return nil, err
	}
	return s.memStore.get(ctx, key)
}

func (s hangingStore) put(ctx context.Context, key string, v []byte) error {
	if err := s.hang(ctx, "put"); err != nil {
		return err
	}
	return s.memStore.put(ctx, key, v)
}

// One renewal whose call to the store hangs (reading the checkpoint back,
// or writing it) is cut short in time for the next renewal to land before
// the lease runs out: a standby does not take over a live holder, which
// would then stop, its objects in flight read twice. Before, the call was
// bounded by read_timeout only, as long as the lease by default.
func TestCheckpointSaverKeepsItsLeaseThroughAHungRenewal(t *testing.T) {
	for _, op := range []string{"get", "put"} {
		t.Run(op, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			store := memStore{}
			hangs := 0
			a := leaseSaver(t, store, at(14))
			a.store = newSlotted(hangingStore{memStore: store, op: op, hangs: &hangs, entered: make(chan struct{}, 1)}, "ck.json", nil)
			entered := a.store.(*slotted).store.(hangingStore).entered
			acquireOn(t, a) // the stored lease runs to 14:01:00
			renewed := make(chan struct{}, 1)
			a.renewed = func() {
				select {
				case renewed <- struct{}{}:
				default:
				}
			}
			clock := a.clock.(*clockwork.FakeClock)
			go a.run(ctx)
			if err := clock.BlockUntilContext(ctx, 1); err != nil { // the renewal timer
				t.Fatal(err)
			}
			hangs = 1
			clock.Advance(a.lease / 3) // 14:00:21: the renewal's call hangs
			<-entered

			clock.Advance(at(14).Add(59 * time.Second).Sub(clock.Now()))
			select {
			case <-renewed:
			case <-time.After(time.Minute): // a guard against a hang, not a timing
				t.Fatalf("at %v, a second before the lease runs out, no renewal landed: the hung call still held it", clock.Now())
			}
			b := leaseSaver(t, store, at(14).Add(65*time.Second))
			if err := b.acquire(ctx); !errors.Is(err, errCheckpointHeld) {
				t.Fatalf("a standby at 14:01:05 took over the live holder whose renewal hung once: %v", err)
			}
		})
	}
}

// A holder whose every renewal hangs, each cut at its limit and tried again
// at once, lets its lease lapse; a standby takes the checkpoint over. Once
// the store answers again, the holder's next renewal reads the checkpoint
// back and stops (docs: it does not write over the new holder's progress),
// the object it finished meanwhile never saved over the new holder's.
func TestCheckpointSaverRenewalsHungPastTheLeaseStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memStore{}
	hangs := 0
	entered := make(chan struct{}, 1)
	a := leaseSaver(t, store, at(14))
	a.store = newSlotted(hangingStore{memStore: store, hangs: &hangs, entered: entered}, "ck.json", nil)
	acquireOn(t, a) // the stored lease runs to 14:01:00
	lost := make(chan error, 1)
	a.onLost = func(err error) { lost <- err }
	clock := a.clock.(*clockwork.FakeClock)
	go a.run(ctx)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the renewal timer
		t.Fatal(err)
	}
	hangs = 1 << 20
	for range 3 { // 14:00:20, 14:00:40, 14:01:00: each renewal hangs until the next is due
		clock.Advance(a.lease / 3)
		<-entered
	}
	a.ckpt.finished(hourObj("p", at(13), 0))
	b, mine := takeOver(t, store, at(14).Add(65*time.Second))

	hangs = 0 // the store answers again: the renewal after the hung one
	clock.Advance(a.lease / 3)
	waitLost(t, a, lost, "the holder whose renewals hung past its lease")
	doc := storedDoc(t, b)
	if doc.Owner == nil || doc.Owner.ID != b.me.ID || !slices.Contains(doc.Partitions["p"].Done, mine.key) ||
		slices.Contains(doc.Partitions["p"].Done, hourObj("p", at(13), 0).key) {
		t.Fatalf("the holder whose renewals hung wrote over the new holder: owner %v, done %v", doc.Owner, doc.Partitions["p"].Done)
	}
}

// takeOver is a process at now that takes the checkpoint in store over and
// saves an object of its own, which it returns.
func takeOver(t *testing.T, store memStore, now time.Time) (*checkpointSaver, object) {
	t.Helper()
	b := leaseSaver(t, store, now)
	acquireOn(t, b)
	mine := hourObj("p", at(13), 1)
	b.ckpt.finished(mine)
	if err := b.write(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return b, mine
}

// waitLost waits for holder s, whose onLost sends on lost, to stop as taken
// over.
func waitLost(t *testing.T, s *checkpointSaver, lost <-chan error, holder string) {
	t.Helper()
	select {
	case err := <-lost:
		if !errors.Is(err, errCheckpointHeld) || !s.isLost() {
			t.Fatalf("%s reported %v, want the checkpoint held by another", holder, err)
		}
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatalf("%s did not stop", holder)
	}
}
