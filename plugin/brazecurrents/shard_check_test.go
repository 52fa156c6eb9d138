package brazecurrents

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
)

// Replicas given different shard counts (0/2 here, 1/3 on another host) or
// not one per shard (1/2 stopped) leave objects unread, and each shard's own
// checkpoint and lease notice nothing. A replica warns, once each, of a
// shard of its count with no running replica and of a replica of another
// count, both past the grace, naming the shards; checkpoints of an earlier
// count, released or expired, and another window's, do not count.
func TestInputWarnsOfMissingShardsAndAnotherShardCount(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	hourFile(t, dir, emailSend, at14(0), 0)
	start := at14(10)
	writePeer(t, url, "1/2", "", nil) // its replica stopped: in watch mode, no replica reads its objects
	writePeer(t, url, "1/3", "", &ownerStamp{ID: "host-b-7-x", Host: "host-b", PID: 7, Expires: start.Add(time.Hour)})
	writePeer(t, url, "0/4", "", nil)                                                                                   // released
	writePeer(t, url, "2/4", "", &ownerStamp{ID: "host-c-7-x", Host: "host-c", PID: 7, Expires: start.Add(-time.Hour)}) // crashed long ago
	writePeer(t, url, "0/5", "2026-01-01", &ownerStamp{ID: "host-d-7-x", Host: "host-d", PID: 7, Expires: start.Add(time.Hour)})

	r, logs, checks := startShardRun(t, url, "0/2", true, start)
	// Its checkpoint is new, beside those of other counts (TestInputWarnsWhenANewShardCountStartsOver).
	const fresh = "Shard 0/2 starts a new checkpoint in file://"
	wantShardWarnings(t, logs, fresh)
	r.checkAt(checks, 5*time.Minute)
	wantShardWarnings(t, logs, fresh)
	r.checkAt(checks, 6*time.Minute) // past the grace
	got := wantShardWarnings(t, logs, fresh, "Shards 1/2 have had no running replica", "Replicas run with another shard count")[1:]
	for _, w := range got {
		for _, stale := range []string{"0/4", "2/4", "0/5", "host-c", "host-d"} {
			if strings.Contains(w, stale) {
				t.Errorf("a checkpoint without a live lease, or of another window, counted: %s", w)
			}
		}
	}
	if !strings.Contains(got[1], "shards 1/3 (on host-b) hold live leases") || !strings.Contains(got[0], "Running: 0/2 (this replica), 1/3 (on host-b)") {
		t.Errorf("the warnings do not name the shards seen:\n%s", strings.Join(got, "\n"))
	}
	r.checkAt(checks, time.Minute)
	wantShardWarnings(t, logs, fresh, "Shards 1/2", "Replicas run with another shard count") // once each

	// The stray replica stops (its lease released), 1/2's starts: both end.
	writePeer(t, url, "1/3", "", nil)
	writePeer(t, url, "1/2", "", &ownerStamp{ID: "host-e-7-x", Host: "host-e", PID: 7, Expires: start.Add(time.Hour)})
	r.checkAt(checks, time.Minute)
	wantShardWarnings(t, logs, fresh, "Shards 1/2", "Replicas run with another shard count")
	for _, ended := range []string{"Every shard of 2 has a running replica again", "No replica of another shard count holds a live lease"} {
		if logs.count(ended) != 1 {
			t.Errorf("%q is not logged once", ended)
		}
	}
}

// A deliberate re-shard from 2 to 3 replicas leaves the old count's
// checkpoints behind and runs both counts for a while (a rolling update),
// and the new shards start one after the other: no warning of missing or
// mismatched shards, only, once, that the new checkpoint starts over.
func TestInputShardCheckIsQuietThroughAReshard(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	hourFile(t, dir, emailSend, at14(0), 0)
	start := at14(10)
	live := func(host string, until time.Duration) *ownerStamp {
		return &ownerStamp{ID: host + "-7-x", Host: host, PID: 7, Expires: start.Add(until)}
	}
	writePeer(t, url, "0/2", "", nil)
	writePeer(t, url, "1/2", "", live("old-1", 3*time.Minute)) // stops at the rollout's end without releasing it
	writePeer(t, url, "1/3", "", live("new-1", time.Hour))

	r, logs, checks := startShardRun(t, url, "0/3", true, start)
	r.checkAt(checks, 4*time.Minute)
	writePeer(t, url, "2/3", "", live("new-2", time.Hour))
	for range 4 {
		r.checkAt(checks, 4*time.Minute)
	}
	wantShardWarnings(t, logs, "Shard 0/3 starts a new checkpoint in file://")
}

// A one-pass run (a backfill) ends and releases its lease: a shard whose
// checkpoint was released has run, one with no checkpoint has not.
func TestInputShardCheckOfOnePassRuns(t *testing.T) {
	for _, ran := range []bool{true, false} {
		dir := t.TempDir()
		url := "file://" + dir
		hourFile(t, dir, emailSend, at14(0), 0)
		if ran {
			writePeer(t, url, "1/2", "", nil)
		}
		r, logs, checks := startShardRun(t, url, "0/2", false, at14(10))
		r.checkAt(checks, 11*time.Minute)
		if ran {
			wantShardWarnings(t, logs)
		} else {
			wantShardWarnings(t, logs, "Shards 1/2 have had no running replica")
		}
	}
}

// startShardRun starts a replica of shard on url at start, watching or not,
// its checkpoint in the bucket, and returns its log file and its checks'
// times.
func startShardRun(t *testing.T, url, shard string, watch bool, start time.Time) (*clockRun, *lineSink, chan time.Time) {
	t.Helper()
	checks := make(chan time.Time, 100)
	conf := fmt.Sprintf("url: %s\nwatch: %v\npoll_interval: 1h\nprogress_interval: 0s\nsummary_interval: 0s\nshard: %s\ncheckpoint:\n  in_bucket: true\n  lease: 1m", url, watch, shard)
	r, err := connectClockRunWith(t, conf, start, func(in *currentsInput) {
		in.afterShardCheck = func(at time.Time) { checks <- at }
	})
	if err != nil {
		t.Fatal(err)
	}
	if watch {
		r.pass(0)
	}
	r.waitCheck(checks, start)
	return r, r.logs, checks
}

// checkAt moves r's clock on by d, which renews its lease, and waits for
// the check that follows. The clock moves only once its timers are set: the
// renewal's, and in watch mode the next poll's.
func (r *clockRun) checkAt(checks chan time.Time, d time.Duration) {
	r.t.Helper()
	timers := 1
	if r.in.conf.watch {
		timers = 2
	}
	if err := r.clock.BlockUntilContext(r.ctx, timers); err != nil {
		r.t.Fatal(err)
	}
	r.clock.Advance(d)
	r.waitCheck(checks, r.clock.Now())
}

// waitCheck waits for a check made at or after at.
func (r *clockRun) waitCheck(checks chan time.Time, at time.Time) {
	r.t.Helper()
	for {
		select {
		case got := <-checks:
			if !got.Before(at) {
				return
			}
		case <-r.ctx.Done():
			r.t.Fatalf("no look at the shards' checkpoints at %v", at)
		}
	}
}

// wantShardWarnings checks that the warnings about shards logged so far
// contain want, in order, one each, and returns them.
func wantShardWarnings(t *testing.T, logs *lineSink, want ...string) []string {
	t.Helper()
	var got []string
	for _, w := range logs.matching("level=WARN") {
		if strings.Contains(w, "shard") || strings.Contains(w, "Shard") {
			got = append(got, w)
		}
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.Contains(got[i], want[i])
	}
	if !ok {
		t.Fatalf("shard warnings:\n%s\nwant %q", strings.Join(got, "\n"), want)
	}
	return got
}

// writePeer writes the checkpoint of shard i/N (of since's window, "" for
// none) on its default key in the bucket, as that shard's replica would,
// held by owner (nil: released).
func writePeer(t *testing.T, url, shard, since string, owner *ownerStamp) {
	t.Helper()
	ctx := context.Background()
	i, n, err := parseShard(shard)
	if err != nil {
		t.Fatal(err)
	}
	c := inputConfig{prefix: "currents/", ckptInBucket: true, sel: selection{shard: i, shards: n}}
	if c.sel.since, _, err = parseHours(since); err != nil {
		t.Fatal(err)
	}
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	ckpt := newCheckpoint(0, c.sel)
	ckpt.stamp(owner)
	doc, _, _, err := ckpt.snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	slots := newSlotted(&bucketStore{bucket: bucket}, c.defaultCheckpointKey(), nil)
	if _, err = slots.load(ctx, false); err == nil {
		err = slots.save(ctx, doc)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Scaling one replica (0/1) out to two (0/2 and 1/2) starts new checkpoints,
// as any change of N does: progress does not carry over, and the new shards
// read the whole history again and send it to Segment again. That went
// unsaid; each new shard now warns of it once, naming the old count's
// checkpoints, and a shard restarted on its own checkpoint does not.
func TestInputWarnsWhenANewShardCountStartsOver(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + dir
	var written []map[string]bool
	for n := range 4 {
		written = append(written, hourFile(t, dir, emailSend, at14(0).Add(-2*time.Hour), n))
	}
	all := union(written...)
	// run runs shard to its end and returns the events it read and its
	// warnings about shards, which must be want.
	run := func(shard string, want ...string) (int, []string) {
		t.Helper()
		r, logs, _ := startShardRun(t, url, shard, false, at14(10))
		select {
		case <-r.done: // a one-pass run ends once it read everything
		case <-r.ctx.Done():
			t.Fatalf("shard %s never ended", shard)
		}
		r.close()
		return r.got.total(), wantShardWarnings(t, logs, want...)
	}
	if n, _ := run("0/1"); n != len(all) {
		t.Fatalf("0/1 read %d events, want %d", n, len(all))
	}
	again := 0
	for _, shard := range []string{"0/2", "1/2"} {
		n, got := run(shard, "Shard "+shard+" starts a new checkpoint in "+url+" beside the checkpoints of shards 0/1, of another shard count")
		if !strings.Contains(got[0], "reads every object of its shard from the start") {
			t.Fatalf("the warning does not say what happens: %s", got[0])
		}
		again += n
	}
	if again != len(all) {
		t.Fatalf("shards 0/2 and 1/2 read %d events, want the %d that 0/1 read", again, len(all))
	}
	if n, _ := run("0/2"); n != 0 { // on its own checkpoint now: no warning
		t.Fatalf("0/2 restarted read %d events again", n)
	}
}
