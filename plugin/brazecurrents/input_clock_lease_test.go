package brazecurrents

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// leaseExpiresAfter waits, with a bound, until the checkpoint in dir names
// a lease that expires after at: the holder's renewal landed.
func leaseExpiresAfter(t *testing.T, dir string, at time.Time) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; runtime.Gosched() {
		doc := savedCheckpoint(t, "file://"+dir, "currents-connect-checkpoint-currents-shard-0-of-1")
		if doc.Owner != nil && doc.Owner.Expires.After(at) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease in the checkpoint expires at %v, want after %v", doc.Owner, at)
		}
	}
}

// standbyWaits checks that a process whose clock reads now finds the
// checkpoint held, and says the lease runs past its own clock by more than
// its lease.
func standbyWaits(t *testing.T, conf string, now time.Time) {
	t.Helper()
	_, err := connectClockRun(t, conf, now)
	if !errors.Is(err, errCheckpointHeld) || !strings.Contains(err.Error(), "or the two hosts' clocks disagree") {
		t.Fatalf("a standby whose clock reads %v: %v; want it held, the clocks said to disagree", now, err)
	}
}

// A holder's clock jumps 3 hours ahead, past the expiry of its lease (1m):
// its next renewal writes a lease that expires 3 hours ahead of the true
// time. The holder then stops (a crash: it never renews again), and a
// standby on the true time waits the 3 hours, saying the clocks disagree,
// then takes over and reads what Braze wrote meanwhile: nothing is lost,
// it is read 3 hours late. A standby whose clock is a day behind a holder
// that crashed waits a day alike.
func TestInputLeaseAcrossClockJumps(t *testing.T) {
	dir, conf, r1 := startLeaseHolder(t)

	r1.clock.Advance(3 * time.Hour)
	leaseExpiresAfter(t, dir, at14(10).Add(3*time.Hour))
	standbyWaits(t, conf, at14(12))
	second := hourFile(t, dir, emailSend, at14(0), 1)
	standbyWaits(t, conf, at14(10).Add(2*time.Hour))
	r2 := startClockRun(t, conf, at14(10).Add(3*time.Hour+2*time.Minute))
	r2.pass(0)
	r2.got.waitFor(t, second)
	expectExactly(t, r2.got, second)
	// The holder, were it alive, would stop at its next renewal: its clock
	// moves on a second at a time until it has.
	stopped := func() bool {
		select {
		case <-r1.done:
			return true
		default:
			return false
		}
	}
	for deadline := time.Now().Add(time.Minute); !stopped(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the holder whose checkpoint was taken over did not stop")
		}
		r1.clock.Advance(time.Second)
	}

	// r2 holds it on the true time and crashes; a standby a day behind.
	r2.waitCheckpointed(1)
	standbyWaits(t, conf, at14(10).Add(3*time.Hour-24*time.Hour))
	third := hourFile(t, dir, emailSend, at14(0).Add(3*time.Hour), 2)
	r3 := startClockRun(t, conf, at14(10).Add(3*time.Hour+4*time.Minute))
	r3.pass(0)
	r3.got.waitFor(t, third)
	expectExactly(t, r3.got, third)
}
