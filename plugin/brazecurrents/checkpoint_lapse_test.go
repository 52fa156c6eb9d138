package brazecurrents

import (
	"context"
	"errors"
	"testing"
	"time"
)

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
