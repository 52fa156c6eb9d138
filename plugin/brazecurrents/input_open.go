package brazecurrents

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

// Opening what Connect needs before reading: the bucket, proven listable,
// and the checkpoint with its lease.

// openCheckpoint loads the checkpoint and takes its lease.
func (in *currentsInput) openCheckpoint(ctx context.Context, bucket *blob.Bucket, stop context.CancelFunc) error {
	// A fresh checkpoint each attempt: one that waited for a lease reloads.
	ckpt := newCheckpoint(in.conf.lateArrival, in.conf.sel)
	ckpt.keyNamesShard = in.conf.ckptKey == in.conf.defaultCheckpointKey()
	ckpt.lookback = in.conf.lateLookback
	ckpt.now = in.clock.Now
	var shards *shardCheck
	if in.conf.ckptInBucket && ckpt.keyNamesShard {
		// The other shards' checkpoints are found by their default keys.
		shards = newShardCheck(in, bucket)
	}
	saver := &checkpointSaver{ckpt: ckpt, store: in.checkpointStore(bucket), log: in.log, stats: in.stats, clock: in.clock,
		lease: in.conf.ckptLease, timeout: in.conf.readTimeout, me: in.owner, onLost: in.lostCheckpoint(stop), renewed: shards.poke,
		wake: make(chan struct{}, 1), onSave: make(chan struct{})}
	if err := saver.acquire(ctx); err != nil {
		return err
	}
	if shards != nil {
		shards.fresh = saver.fresh
	}
	if saver.store != nil {
		in.log.Infof("Checkpoint kept in %s, held by %s", saver.store.describe(), in.owner.ID)
	} else if in.conf.watch {
		in.log.Warnf("No checkpoint configured: a restart will read every object again")
	}
	in.ckpt, in.saver, in.shards = ckpt, saver, shards
	in.stats.restoredNewest(ckpt.newestDone(), in.clock.Now())
	return nil
}

// openChecked opens the bucket and proves it can be listed, so that a
// missing or forbidden bucket fails at start with a message that says so.
// Connect retries it: a bucket may be unreachable only for a while. The
// listing waits at most timeout (read_timeout; 0: no limit).
func openChecked(ctx context.Context, url, prefix string, timeout time.Duration) (*blob.Bucket, error) {
	bucket, err := bucketurl.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", bucketName(url), err)
	}
	listCtx, done := callCtx(ctx, timeout)
	_, _, err = bucket.ListPage(listCtx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: prefix})
	if err = done(err); err == nil {
		return bucket, nil
	}
	err = bucketurl.Redact(err)
	_ = bucket.Close()
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return nil, fmt.Errorf("bucket %s does not exist: %w", bucketName(url), err)
	case gcerrors.PermissionDenied:
		return nil, fmt.Errorf("access to bucket %s is forbidden (the credentials need list and read permissions on %q): %w", bucketName(url), prefix, err)
	}
	return nil, fmt.Errorf("cannot list bucket %s: %w", bucketName(url), err)
}

// lostCheckpoint stops reading when another process took the checkpoint
// over: going on would send every event twice. The input then ends.
func (in *currentsInput) lostCheckpoint(stop context.CancelFunc) func(error) {
	return func(err error) {
		in.log.Errorf("Stopping: %v", err)
		noteUnfinished(fmt.Sprintf("another process took the checkpoint over (%v). Started again, this process waits for the checkpoint's lease as a standby", err))
		stop()
	}
}

// unfinished is why an input of this process ended its run with its work
// not done: the first reason noted.
var unfinished atomic.Pointer[string]

func noteUnfinished(reason string) { unfinished.CompareAndSwap(nil, &reason) }

// Unfinished says why an input of this process ended its run with its work
// not done (another process took its checkpoint over; a one-pass run was
// stopped before its end), or "". Connect ends such a run with status 0, as
// one that finished: the binary exits with status 1 instead, so that a
// supervisor (systemd, a Kubernetes Job whose pod was evicted, a script)
// starts it again: it waits for the lease, or resumes from the checkpoint.
func Unfinished() string {
	if reason := unfinished.Load(); reason != nil {
		return *reason
	}
	return ""
}

// notePassStopped notes, as the input closes, a one-pass run (no watch, no
// notifications) that has not read and settled every object: stopped by a
// signal or a forced shutdown, not by its end.
func (in *currentsInput) notePassStopped() {
	if in.conf.watch || in.sub != nil {
		return
	}
	in.mu.Lock()
	over := in.ended && len(in.inFlight) == 0
	in.mu.Unlock()
	if !over {
		next := "it resumes from its checkpoint"
		if !in.conf.checkpointed() {
			next = "with no checkpoint configured, it reads every object again"
		}
		noteUnfinished("the one-pass run was stopped before it read and delivered every object. Run it again: " + next)
	}
}
