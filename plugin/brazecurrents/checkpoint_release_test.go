package brazecurrents

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"gocloud.dev/blob"
)

// A renewal that runs after the release (the renewal loop picked a renewal
// due as the input stopped: a one-pass run's end, a rolling update) has no
// lease left to renew. Before, it read the released document back, "no
// owner", and stopped the input as taken over: the binary exited with status
// 1, "another process took the checkpoint over", from a run that had
// finished alone on its checkpoint (seen once in e2e under load). Nor does it
// write the lease back, which would keep the next process waiting, or over
// the claim of the process that took the checkpoint over since; nor does a
// save of an object that finished after the release (a shutdown cut short).
func TestCheckpointSaverRenewalAfterTheReleaseIsNoTakeover(t *testing.T) {
	for _, c := range []struct {
		name     string
		late     time.Duration // how long after the claim the release and the renewal come
		takeOver bool          // another process takes the checkpoint over in between
	}{
		{"renewal due at the release", time.Minute / 3, false},
		{"process stalled past its lease", time.Minute + time.Minute/3, false},
		{"next process claimed it in between", time.Minute / 3, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			bucket, err := blob.OpenBucket(ctx, "file://"+t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			onBucket := func(s *checkpointSaver) *checkpointSaver {
				s.store = newSlotted(&bucketStore{bucket: bucket, name: "test"}, "ck.json", nil)
				return s
			}
			a := onBucket(leaseSaver(t, memStore{}, at(14)))
			acquireOn(t, a)
			a.ckpt.finished(hourObj("p", at(13), 0))
			lost := make(chan error, 1)
			a.onLost = func(err error) { lost <- err }
			renewed := make(chan struct{}, 1)
			a.renewed = func() { renewed <- struct{}{} }

			a.clock.(*clockwork.FakeClock).Advance(c.late)
			if err := a.release(ctx); err != nil {
				t.Fatal(err)
			}
			var b *checkpointSaver
			if c.takeOver {
				b = onBucket(leaseSaver(t, memStore{}, at(14).Add(c.late+time.Second)))
				acquireOn(t, b)
			}
			// The run loop started now finds its renewal due at once.
			go a.run(ctx)
			select {
			case err := <-lost:
				t.Fatalf("a renewal after the release reported a takeover: %v", err)
			case <-renewed:
			case <-time.After(time.Minute): // a guard against a hang, not a timing
				t.Fatal("no renewal ran")
			}
			doc := storedDoc(t, a)
			switch {
			case a.isLost():
				t.Fatal("the released holder counts its checkpoint as lost")
			case b == nil && doc.Owner != nil:
				t.Fatalf("a renewal after the release wrote the lease back: %v", doc.Owner)
			case b != nil && (doc.Owner == nil || doc.Owner.ID != b.me.ID):
				t.Fatalf("a renewal after the release wrote over the next holder's claim: %v", doc.Owner)
			}
			before, _ := a.store.load(ctx, true)
			a.ckpt.finished(hourObj("p", at(13), 1))
			if err := a.write(ctx, false); err != nil {
				t.Fatalf("a save after the release: %v", err)
			}
			if after, _ := a.store.load(ctx, true); !bytes.Equal(after, before) {
				t.Fatalf("a save after the release was written over the released checkpoint or the next holder's: %s", after)
			}
		})
	}
}
