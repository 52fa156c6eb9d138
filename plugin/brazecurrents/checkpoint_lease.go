package brazecurrents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// The checkpoint's lease: who holds it, how it is claimed, and what its
// holder does once it may have lapsed.

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

// claim writes a fresh lease and reads it back after a pause: two processes
// that both found the checkpoint free both claim it, and the slot read back
// names the one that won.
func (s *checkpointSaver) claim(ctx context.Context) error {
	s.claimed = s.clock.Now()
	if err := s.renew(context.WithoutCancel(ctx)); err != nil {
		return err
	}
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

// renewLease renews a lease that is held; one that lapsed it claims again,
// and lets readers start objects again once the claim landed. Its read-back
// and its write are one step under mu, which the release takes too.
func (s *checkpointSaver) renewLease(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		// The renewal loop picked a renewal due as the input stopped: read
		// back, the released document names no owner, which is no takeover.
		return nil
	}
	held := s.holding()
	if held {
		if err := s.verifyLocked(ctx); err != nil {
			return err
		}
	}
	// A lapsed lease's write reads the checkpoint back first, and stops if
	// another process took over (holdingLocked). Unlike a claim at start it
	// does not pause and read its claim back: a standby claiming at the same
	// instant may then hold it too, until the next renewal (no
	// compare-and-swap; docs/input.md).
	if err := s.renewLocked(ctx); err != nil || held {
		return err
	}
	s.savedMu.Lock()
	s.suspended = false
	s.changedLocked()
	s.savedMu.Unlock()
	s.stats.leaseLapsedSet(false)
	s.log.Infof("Checkpoint lease in %s: no other process took it over while it lapsed, and this process claimed it again; starting objects again", s.store.describe())
	return nil
}

// holding says whether this process may start objects (holdingLocked).
func (s *checkpointSaver) holding() bool {
	s.savedMu.Lock()
	defer s.savedMu.Unlock()
	return s.holdingLocked()
}

// holdingLocked says whether this process may start objects: its lease in
// the store has not lapsed since it was last claimed. Once no renewal landed
// for a whole lease (a store that fails every read and write, a pause) a
// standby may have taken over; objects started then would be read by both.
// Until a renewal claims the lease again, no object starts, and each write
// reads the checkpoint back first, so that one finishing meanwhile does not
// write over another holder's claim.
func (s *checkpointSaver) holdingLocked() bool {
	if !s.suspended && !s.expires.IsZero() && !s.clock.Now().Before(s.expires) {
		s.suspended = true
		s.stats.leaseLapsedSet(true)
		s.log.Errorf("Checkpoint lease in %s lapsed at %s: no renewal landed for %v, and another process may hold the checkpoint now. Starting no more objects until this process claims the lease again (objects in flight finish; their saves read the checkpoint back first)",
			s.store.describe(), s.expires.Format(time.RFC3339), s.lease)
	}
	return !s.suspended
}
