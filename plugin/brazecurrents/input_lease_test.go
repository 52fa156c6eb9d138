package brazecurrents

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// A second process on the same checkpoint (a rolling update) waits while the
// first holds the lease, then takes over where the first stopped: nothing is
// read twice.
func TestInputLeaseKeepsASecondProcessWaiting(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 1m", dir)
	first := hourFile(t, dir, emailSend, at14(0), 0)
	r1 := startClockRun(t, conf, at14(10))
	r1.pass(0)
	r1.got.waitFor(t, first)

	_, err := connectClockRun(t, conf, at14(10).Add(30*time.Second))
	if !errors.Is(err, errCheckpointHeld) || !strings.Contains(err.Error(), "is held by "+r1.in.owner.ID) || !strings.Contains(err.Error(), "waiting for it to stop") {
		t.Fatalf("a second process connected while the first held the checkpoint: %v", err)
	}

	// The first stops cleanly and releases the lease: the second starts at
	// once, without waiting for the lease to expire, and reads only new files.
	r1.close()
	second := hourFile(t, dir, emailSend, at14(0), 1)
	r2 := startClockRun(t, conf, at14(10).Add(40*time.Second))
	r2.pass(0)
	r2.got.waitFor(t, second)
	expectExactly(t, r2.got, second)
	expectExactly(t, r1.got, first)
}

// A process that crashed holds its lease until it expires; a process that
// finds its checkpoint taken over stops instead of sending every event twice.
func TestInputLeaseExpiresAndATakenOverProcessStops(t *testing.T) {
	dir, conf, r1 := startLeaseHolder(t)

	// r1 stalls (its clock stands still): its lease runs out for r2.
	if _, err := connectClockRun(t, conf, at14(10).Add(50*time.Second)); !errors.Is(err, errCheckpointHeld) {
		t.Fatalf("lease taken before it expired: %v", err)
	}
	r2 := startClockRun(t, conf, at14(12))
	r2.pass(0)

	// r1's next renewal reads the checkpoint back, finds r2's name in it and
	// stops: its input ends, and its checkpoint is not written again. The
	// clock moves only once both of r1's timers are set, the next poll's
	// and the renewal's: on a loaded machine the renewal's may not be yet,
	// and moving the clock before it is would never fire it.
	if err := r1.clock.BlockUntilContext(r1.ctx, 2); err != nil {
		t.Fatal(err)
	}
	r1.clock.Advance(20 * time.Second)
	select {
	case <-r1.done:
	case <-time.After(time.Minute):
		t.Fatal("the process whose checkpoint was taken over did not stop")
	}
	doc := savedCheckpoint(t, "file://"+dir, "currents-connect-checkpoint-currents-shard-0-of-1")
	if doc.Owner == nil || doc.Owner.ID != r2.in.owner.ID {
		t.Fatalf("checkpoint owner %v, want %s", doc.Owner, r2.in.owner.ID)
	}
}

// startLeaseHolder starts, at 14:10, a process on a checkpoint with a lease
// of 1m in a new file:// bucket, polling hourly, and waits until it has read
// a file and saved the checkpoint.
func startLeaseHolder(t *testing.T) (dir, conf string, r *clockRun) {
	dir = t.TempDir()
	conf = fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1h\nprogress_interval: 0s\nsummary_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 1m", dir)
	first := hourFile(t, dir, emailSend, at14(0), 0)
	r = startClockRun(t, conf, at14(10))
	r.pass(0)
	r.got.waitFor(t, first)
	r.waitCheckpointed(1)
	return dir, conf, r
}

// A restart on the same host after a crash (kill -9, a container restarted
// in its pod) need not wait for the lease: the holder's process is gone.
func TestInputLeaseOfAnExitedProcessOnThisHostIsTakenAtOnce(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	clock := clockwork.NewFakeClockAt(at14(0))
	saver := &checkpointSaver{clock: clock, lease: time.Hour, me: newOwner()}
	for _, tc := range []struct {
		owner ownerStamp
		held  bool
	}{
		{ownerStamp{ID: "crashed", Host: host, PID: gone.Process.Pid}, false},
		{ownerStamp{ID: "elsewhere", Host: "another-host", PID: gone.Process.Pid}, true},
		{ownerStamp{ID: "alive", Host: host, PID: os.Getppid()}, true},
	} {
		tc.owner.Expires = at14(30)
		if held := saver.heldBy(&tc.owner); held != tc.held {
			t.Errorf("owner %s on %s: held %v, want %v", tc.owner.ID, tc.owner.Host, held, tc.held)
		}
	}
}

// waitCheckpointed waits until r's checkpoint in the bucket records n
// objects done. The saver writes in the background: a test that brings in
// another process on the same checkpoint must not race r's last write.
func (r *clockRun) waitCheckpointed(n uint64) {
	r.t.Helper()
	s := r.in.saver
	for {
		s.savedMu.Lock()
		saved, next := s.saved, s.onSave
		s.savedMu.Unlock()
		if saved >= n {
			return
		}
		select {
		case <-next:
		case <-r.ctx.Done():
			r.t.Fatalf("the checkpoint never recorded %d objects done", n)
		}
	}
}
