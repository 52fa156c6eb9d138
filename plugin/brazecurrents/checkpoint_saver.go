package brazecurrents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// errCheckpointHeld says that another process holds the checkpoint: two
// processes on one checkpoint would each send every event.
var errCheckpointHeld = errors.New("checkpoint held by another process")

// ownerStamp names the process holding a checkpoint, until Expires unless it
// renews it. Stores offer no compare-and-swap that every cloud shares, so
// ownership is a lease written into the document and read back.
type ownerStamp struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Expires time.Time `json:"expires"`
}

func (o *ownerStamp) String() string {
	return fmt.Sprintf("%s (pid %d on %s)", o.ID, o.PID, o.Host)
}

func newOwner() ownerStamp {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return ownerStamp{ID: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])), Host: host, PID: os.Getpid()}
}

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

	mu      sync.Mutex // one write at a time
	lost    bool
	expires time.Time // when the lease in the store runs out: set by writes that succeeded only
	fresh   bool      // acquire found no checkpoint: this run starts from the beginning

	savedMu sync.Mutex
	saved   uint64        // objects done that the stored checkpoint holds
	onSave  chan struct{} // closed, and replaced, by each successful write
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
			return fmt.Errorf("%w: %s is held by %s until %s unless renewed; waiting for it to stop or its lease to expire (give each replica its own shard or checkpoint key)",
				errCheckpointHeld, s.store.describe(), o, o.Expires.Format(time.RFC3339))
		}
		if err := s.ckpt.restore(doc); err != nil {
			return fmt.Errorf("the checkpoint in %s: %w (use a new checkpoint key to start over)", s.store.describe(), err)
		}
	}
	if err := s.renew(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	// Two processes starting together both find the checkpoint free and both
	// claim it; the slot read back after a pause names the one that won.
	if !sleepCtx(ctx, s.clock, s.settle()) {
		return ctx.Err()
	}
	return s.verify(ctx)
}

// heldBy says whether another live process holds the lease: one that has
// not let it expire, unless it ran on this host and has exited (a restart
// after a crash, in a container or not, need not wait for the lease).
func (s *checkpointSaver) heldBy(o *ownerStamp) bool {
	if o.ID == s.me.ID || !s.clock.Now().Before(o.Expires) {
		return false
	}
	if o.Host == s.me.Host && (o.PID == s.me.PID || processGone(o.PID)) {
		return false
	}
	return true
}

// processGone says whether no process with pid runs on this host.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
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
	stamp := s.me
	stamp.Expires = s.clock.Now().Add(s.lease).UTC()
	s.ckpt.stamp(&stamp)
	return s.write(ctx, true)
}

func (s *checkpointSaver) run(ctx context.Context) {
	if s.store == nil {
		return
	}
	renewal := s.clock.NewTimer(s.lease / 3)
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
			err := s.verify(renewCtx)
			if err == nil {
				err = s.renew(renewCtx)
			}
			err = done(err)
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

// lapsedLocked says whether the lease in the store has run out, by this
// process's clock.
func (s *checkpointSaver) lapsedLocked() bool {
	return !s.expires.IsZero() && !s.clock.Now().Before(s.expires)
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
	if s.lost {
		return errCheckpointHeld
	}
	// A process whose stored lease lapsed (a long pause, a frozen VM,
	// renewals the store refused) may have been taken over meanwhile: it
	// reads the checkpoint back rather than write over the new holder's
	// progress (and stop it instead).
	if s.lapsedLocked() {
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
	if !lease.IsZero() && s.lapsedLocked() {
		if err := s.verifyLocked(ctx); err != nil {
			s.ckpt.markDirty()
			return err
		}
	}
	if !lease.IsZero() { // a release keeps the last lease's expiry
		s.expires = lease
	}
	s.savedMu.Lock()
	s.saved = finishes
	close(s.onSave)
	s.onSave = make(chan struct{})
	s.savedMu.Unlock()
	return nil
}

// waitSaved holds a reader back while more than limit done objects are not
// yet in the stored checkpoint: what a crash re-sends stays bounded however
// slow the store is. False when ctx ended first.
func (s *checkpointSaver) waitSaved(ctx context.Context, limit uint64) bool {
	if s.store == nil {
		return true
	}
	for {
		s.savedMu.Lock()
		lag, saved := s.ckpt.finishedCount()-s.saved, s.onSave
		s.savedMu.Unlock()
		if lag <= limit {
			return true
		}
		s.poke()
		select {
		case <-saved:
		case <-ctx.Done():
			return false
		}
	}
}

// release writes the last checkpoint without the lease, so that the next
// process (a rolling update) takes over at once.
func (s *checkpointSaver) release(ctx context.Context) error {
	if s.store == nil || s.isLost() {
		return nil
	}
	s.ckpt.stamp(nil)
	return s.write(context.WithoutCancel(ctx), true)
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
