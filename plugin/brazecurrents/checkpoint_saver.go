package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// checkpointSaver holds the checkpoint's lease and writes the checkpoint
// whenever it changed, one write at a time: done objects that arrive during
// a write go into the next one.
type checkpointSaver struct {
	ckpt    *checkpoint
	store   checkpointStore // nil: progress is not kept
	log     *service.Logger
	stats   *inputStats
	clock   clockwork.Clock
	lease   time.Duration
	timeout time.Duration // read_timeout (0: none); see callLimit
	me      ownerStamp
	onLost  func(error) // another process took the checkpoint over
	renewed func()      // after each lease renewal that succeeded
	wake    chan struct{}

	mu       sync.Mutex // one write at a time
	lost     bool
	released bool      // release wrote the last checkpoint: nothing is renewed or written after it
	fresh    bool      // acquire found no checkpoint: this run starts from the beginning
	claimed  time.Time // when the last claim began: the first renewal is due a third of the lease after

	// Under savedMu, which readers take (waitSaved) while a write holds mu.
	savedMu   sync.Mutex
	saved     uint64        // objects done that the stored checkpoint holds
	onSave    chan struct{} // closed, and replaced, by each successful write and a claim that resumes
	expires   time.Time     // when the lease in the store runs out: set by writes that succeeded only
	suspended bool          // the lease lapsed: no object starts until it is claimed again (holdingLocked)
}

func (s *checkpointSaver) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// errStoreSilent is the cause of a call to the checkpoint's store cut by
// its limit (callLimit).
type errStoreSilent struct{ limit time.Duration }

func (e errStoreSilent) Error() string {
	return fmt.Sprintf("the checkpoint's store did not answer for %v (read_timeout, at most a third of checkpoint.lease)", e.limit)
}

// callLimit is how long one call to the store may wait: read_timeout, at
// most a third of the lease. Renewals come every third of it, so a call
// that hangs is cut by the time the next renewal is due, which then still
// lands before the lease runs out. Bounded by read_timeout alone (1m, as
// long as the default lease), one hung renewal let a standby take over.
func (s *checkpointSaver) callLimit() time.Duration {
	if s.timeout > 0 {
		return min(s.timeout, s.lease/3)
	}
	return s.lease / 3
}

// bounded ends ctx once callLimit passed on clock. Each call to the store
// is limited on the wall clock, as every call to the bucket (callCtx); a
// renewal, its read-back and its write together, on the input's clock.
// done releases the limit and returns the call's error, naming the limit
// when it ended the call (once: the limits nest).
func (s *checkpointSaver) bounded(ctx context.Context, clock clockwork.Clock) (context.Context, func(error) error) {
	cause := errStoreSilent{s.callLimit()}
	ctx, cancel := context.WithCancelCause(ctx)
	timer := clock.AfterFunc(cause.limit, func() { cancel(cause) })
	return ctx, func(err error) error {
		timer.Stop()
		if err != nil && !errors.Is(err, cause) && errors.Is(context.Cause(ctx), cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		cancel(nil)
		return err
	}
}

// claimSettle is the longest pause before a claim is read back (settle). A
// variable for the package's tests: their processes are goroutines over
// local buckets, which need not wait a second at each start (38 starts).
var claimSettle = time.Second

// settle is how long a claim waits before it is read back: longer than it
// takes another process to load the checkpoint and write its own claim.
func (s *checkpointSaver) settle() time.Duration {
	return min(claimSettle, s.lease/10)
}

// acquire loads the checkpoint and takes its lease, or fails while another
// live process holds it (Connect is retried, so the caller waits for it).
func (s *checkpointSaver) acquire(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	doc, err := s.loadDoc(ctx, false)
	if err != nil {
		return err
	}
	s.fresh = doc == nil
	if doc != nil {
		if o := doc.Owner; o != nil && s.heldBy(o) {
			return fmt.Errorf("%w: %s is held by %s until %s unless renewed%s; waiting for it to stop or its lease to expire (give each replica its own shard or checkpoint key)",
				errCheckpointHeld, s.store.describe(), o, o.Expires.Format(time.RFC3339), s.skewed(o))
		}
		if err := s.ckpt.restore(doc); err != nil {
			return fmt.Errorf("the checkpoint in %s: %w (use a new checkpoint key to start over)", s.store.describe(), err)
		}
	}
	return s.claim(ctx)
}

// skewed says when o's lease runs out more than a lease after this host's
// clock: the holder's clock ahead of this one (or a longer lease). A holder
// that stopped without releasing it is then waited for that much longer.
func (s *checkpointSaver) skewed(o *ownerStamp) string {
	ahead := o.Expires.Sub(s.clock.Now())
	if ahead <= s.lease {
		return ""
	}
	return fmt.Sprintf(", %v from now by this host's clock, more than %s.%s (%v): the holder's lease is longer, or the two hosts' clocks disagree (check NTP); if the holder stopped without releasing it, this process waits that long",
		ahead.Round(time.Second), inFieldCheckpoint, inFieldCheckpointLease, s.lease)
}

// loadDoc reads the checkpoint; with every, a slot the store fails to read
// is an error, not passed over (slotted.load).
func (s *checkpointSaver) loadDoc(ctx context.Context, every bool) (*checkpointDoc, error) {
	ctx, done := s.bounded(ctx, clockwork.NewRealClock())
	raw, err := s.store.load(ctx, every)
	if err = done(err); err != nil {
		return nil, fmt.Errorf("loading the checkpoint from %s: %w", s.store.describe(), err)
	}
	if raw == nil {
		return nil, nil
	}
	doc, err := s.ckpt.parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint in %s: %w (use a new checkpoint key to start over)", s.store.describe(), err)
	}
	return doc, nil
}

// verify reads the checkpoint back: another owner's stamp means that the
// checkpoint was taken over, and this process must stop using it.
func (s *checkpointSaver) verify(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verifyLocked(ctx)
}

func (s *checkpointSaver) verifyLocked(ctx context.Context) error {
	doc, err := s.loadDoc(ctx, true)
	if err != nil {
		return err
	}
	if doc != nil && doc.Owner != nil && doc.Owner.ID == s.me.ID {
		return nil
	}
	who := "no owner"
	if doc != nil && doc.Owner != nil {
		who = doc.Owner.String()
	}
	s.lost = true
	return fmt.Errorf("%w: %s now names %s, not this process", errCheckpointHeld, s.store.describe(), who)
}

// renew writes the checkpoint with a fresh lease. Until a write stores it,
// the lease in the store is the old one, which may lapse (write).
func (s *checkpointSaver) renew(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewLocked(ctx)
}

func (s *checkpointSaver) renewLocked(ctx context.Context) error {
	stamp := s.me
	stamp.Expires = s.clock.Now().Add(s.lease).UTC()
	s.ckpt.stamp(&stamp)
	return s.writeLocked(ctx, true)
}

func (s *checkpointSaver) run(ctx context.Context) {
	if s.store == nil {
		return
	}
	// The first renewal is due a third of the lease after the claim began,
	// not after this loop started (a second later, past the claim's pause).
	renewal := s.clock.NewTimer(s.claimed.Add(s.lease / 3).Sub(s.clock.Now()))
	defer renewal.Stop()
	for {
		select {
		case <-s.wake:
			// A write under way when the input stops is not cut short:
			// release waits for it, then writes the last checkpoint.
			err := s.write(context.WithoutCancel(ctx), false)
			if errors.Is(err, errCheckpointHeld) {
				s.onLost(err)
				return
			}
			if err != nil {
				// The next done object, or the final flush, tries again.
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
				s.poke()
			}
		case <-renewal.Chan():
			// The next is due a third of the lease after this one began, not
			// after it ended: after a call cut by its limit, at once.
			due := s.clock.Now().Add(s.lease / 3)
			renewCtx, done := s.bounded(context.WithoutCancel(ctx), s.clock)
			err := done(s.renewLease(renewCtx))
			if errors.Is(err, errCheckpointHeld) {
				s.onLost(err)
				return
			}
			if err != nil {
				s.log.Errorf("Renewing the checkpoint lease failed, trying again: %v", err)
			} else if s.renewed != nil {
				s.renewed()
			}
			renewal.Reset(due.Sub(s.clock.Now()))
		case <-ctx.Done():
			return
		}
	}
}

// changedLocked wakes the readers waiting in waitSaved.
func (s *checkpointSaver) changedLocked() {
	close(s.onSave)
	s.onSave = make(chan struct{})
}

func (s *checkpointSaver) isLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// write saves the checkpoint if it changed since the last write, or always
// when force is set; never once the checkpoint belongs to another process.
func (s *checkpointSaver) write(ctx context.Context, force bool) error {
	if s.store == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(ctx, force)
}

func (s *checkpointSaver) writeLocked(ctx context.Context, force bool) error {
	if s.lost {
		return errCheckpointHeld
	}
	// After the release, the document is the next holder's: a save of an
	// object finished since (a shutdown cut short) would write over its claim.
	if s.released {
		return nil
	}
	// A process whose stored lease lapsed (a long pause, a frozen VM,
	// renewals the store refused) may have been taken over meanwhile: it
	// reads the checkpoint back rather than write over the new holder's
	// progress (and stop it instead).
	if !s.holding() {
		if err := s.verifyLocked(ctx); err != nil {
			return err
		}
	}
	doc, finishes, lease, err := s.ckpt.snapshot(force)
	if doc == nil && err == nil {
		return nil // unchanged
	}
	if err == nil {
		saveCtx, done := s.bounded(ctx, clockwork.NewRealClock())
		err = done(s.store.save(saveCtx, doc))
	}
	s.stats.checkpointSaved(err)
	if err != nil {
		s.ckpt.markDirty()
		s.log.Errorf("Saving the checkpoint to %s failed: %v", s.store.describe(), err)
		return err
	}
	// A save that lands once the lease it was made under lapsed (a slow
	// store, a pause mid-write) may have landed after another process took
	// over: it reads the checkpoint back before counting on its new lease,
	// which would let it write on over the new holder's progress.
	if !lease.IsZero() && !s.holding() {
		if err := s.verifyLocked(ctx); err != nil {
			s.ckpt.markDirty()
			return err
		}
	}
	s.savedMu.Lock()
	if !lease.IsZero() { // a release keeps the last lease's expiry
		s.expires = lease
	}
	s.saved = finishes
	s.changedLocked()
	s.savedMu.Unlock()
	return nil
}

// waitSaved holds a reader back while more than limit done objects are not
// yet in the stored checkpoint: what a crash re-sends stays bounded however
// slow the store is. So it does while the lease lapsed (holdingLocked).
// False when ctx ended first.
func (s *checkpointSaver) waitSaved(ctx context.Context, limit uint64) bool {
	if s.store == nil {
		return true
	}
	for {
		s.savedMu.Lock()
		lag, saved, held := s.ckpt.finishedCount()-s.saved, s.onSave, s.holdingLocked()
		s.savedMu.Unlock()
		if lag <= limit && held {
			return true
		}
		if lag > limit {
			s.poke()
		}
		select {
		case <-saved:
		case <-ctx.Done():
			return false
		}
	}
}

// release writes the last checkpoint without the lease, so that the next
// process (a rolling update) takes over at once. It waits for a renewal
// under way; one that comes after it does nothing (renewLease).
func (s *checkpointSaver) release(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost || s.released {
		return nil
	}
	s.ckpt.stamp(nil)
	err := s.writeLocked(context.WithoutCancel(ctx), true)
	s.released = true
	return err
}

// sleepCtx waits d on clock; false when ctx ended first.
func sleepCtx(ctx context.Context, clock clockwork.Clock, d time.Duration) bool {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}
