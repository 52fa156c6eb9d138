package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// outageBuckets are two replicas' file:// buckets holding the same objects,
// whose checkpoint key (ck/lease.json) leads, through a symlink in each, to
// one shared directory: one replica's link can be cut, an outage of the
// checkpoint's store that the other does not see.
type outageBuckets struct {
	t      *testing.T
	dirs   [2]string
	shared string
	down   string // a file: a link to it fails every read and write
}

func newOutageBuckets(t *testing.T) *outageBuckets {
	b := &outageBuckets{t: t, dirs: [2]string{t.TempDir(), t.TempDir()}, shared: t.TempDir(), down: filepath.Join(t.TempDir(), "down")}
	if err := os.WriteFile(b.down, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range b.dirs {
		b.link(i, b.shared)
	}
	return b
}

// link points replica i's checkpoint directory at target, in one rename:
// a read between a removal and a new link would find no checkpoint at all.
func (b *outageBuckets) link(i int, target string) {
	b.t.Helper()
	link := filepath.Join(b.dirs[i], "ck")
	if err := os.Symlink(target, link+".new"); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		b.t.Fatal(err)
	}
}

func (b *outageBuckets) cut(i int)     { b.link(i, b.down) }
func (b *outageBuckets) restore(i int) { b.link(i, b.shared) }

// file writes the same object into both buckets.
func (b *outageBuckets) file(hour time.Time, n int) map[string]bool {
	hourFile(b.t, b.dirs[0], emailSend, hour, n)
	return hourFile(b.t, b.dirs[1], emailSend, hour, n)
}

// doc is the checkpoint as replica i reads it.
func (b *outageBuckets) doc(i int) *checkpointDoc {
	b.t.Helper()
	bucket, err := blob.OpenBucket(context.Background(), "file://"+b.dirs[i])
	if err != nil {
		b.t.Fatal(err)
	}
	defer bucket.Close()
	s := &checkpointSaver{ckpt: newCheckpoint(0, selection{}), lease: time.Minute, store: newSlotted(&bucketStore{bucket: bucket}, "ck/lease.json", nil)}
	return storedDoc(b.t, s)
}

func (b *outageBuckets) conf(i int) string {
	return fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nprogress_interval: 0s\nsummary_interval: 0s\ncheckpoint:\n  in_bucket: true\n  key: ck/lease.json\n  lease: 1m", b.dirs[i])
}

const (
	lapsedLine        = "no renewal landed for 1m0s"
	leaseLapsedMetric = "braze_currents_checkpoint_lease_lapsed"
)

// exporting gives an input its own prometheus exporter before it connects,
// and returns the URL of its /metrics.
func exporting(t *testing.T) (func(*currentsInput), string) {
	res, url := promscrape.Resources(t)
	return func(in *currentsInput) { in.stats = newInputStats(res.Metrics(), in.log) }, url
}

// wantLapsed fails t unless the scrape at url has the lapse gauge at want.
func wantLapsed(t *testing.T, url string, want float64, who string) {
	t.Helper()
	if v, ok := promscrape.Get(t, url).Gauge(leaseLapsedMetric); !ok || v != want {
		t.Fatalf("%s: %s is %v (present %v), want %v", who, leaseLapsedMetric, v, ok, want)
	}
}

// lapseAcrossTheHour starts a holder on replica 0 at 14:59, which reads an
// object of hour 14 and saves it; then cuts its store off, writes an object
// of hour 15 and lets the holder poll at 15:00:31, its lease lapsed at 15:00
// with no renewal landed. It returns the holder, the URL of its /metrics,
// the two objects' events.
func lapseAcrossTheHour(t *testing.T, b *outageBuckets) (*clockRun, string, map[string]bool, map[string]bool) {
	t.Helper()
	first := b.file(at14(0), 0)
	setup, metrics := exporting(t)
	r1, err := connectClockRunWith(t, b.conf(0), at14(59), setup)
	if err != nil {
		t.Fatal(err)
	}
	r1.pass(0)
	r1.got.waitFor(t, first)
	r1.waitCheckpointed(1)
	wantLapsed(t, metrics, 0, "the holder")

	b.cut(0)
	next := b.file(at14(60), 0)
	r1.poll(1, 90*time.Second)
	// The holder says so once, and starts no object until it claims the
	// lease again. Before, it read on, and sent what a standby sent too.
	if line := r1.logs.waitFor(t, lapsedLine, 1); r1.logs.count(lapsedLine) != 1 {
		t.Fatalf("the lapse logged more than once: %s", line)
	}
	// What on-call pages on: the line alone left only the lag to see.
	wantLapsed(t, metrics, 1, "the holder whose lease lapsed")
	expectExactly(t, r1.got, first)
	// The renewal due at 14:59:20, run as the clock moved, failed: the next
	// is due at 15:00:51. The store is not restored under it.
	r1.logs.waitFor(t, "Renewing the checkpoint lease failed", 1)
	return r1, metrics, first, next
}

// A holder whose store fails every read and write lets its lease lapse, and
// a standby takes the checkpoint over at 15:00:35. The holder read nothing
// of hour 15 meanwhile; once its store answers, its next renewal finds the
// new holder and it stops. Restarted, it waits as a standby.
func TestInputLeaseLapsedInAStoreOutageStartsNothingAndStops(t *testing.T) {
	b := newOutageBuckets(t)
	r1, _, first, next := lapseAcrossTheHour(t, b)

	setup, metrics := exporting(t)
	r2, err := connectClockRunWith(t, b.conf(1), at14(60).Add(35*time.Second), setup)
	if err != nil {
		t.Fatal(err)
	}
	r2.pass(0)
	r2.got.waitFor(t, next)
	expectExactly(t, r2.got, next)
	wantLapsed(t, metrics, 0, "the new holder")

	b.restore(0)
	if err := r1.clock.BlockUntilContext(r1.ctx, 2); err != nil { // the next poll's and renewal's timers
		t.Fatal(err)
	}
	r1.clock.Advance(20 * time.Second)
	select {
	case <-r1.done:
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatal("the holder whose lease lapsed did not stop once it found the checkpoint taken over")
	}
	expectExactly(t, r1.got, first)
	if doc := b.doc(1); doc.Owner == nil || doc.Owner.ID != r2.in.owner.ID {
		t.Fatalf("checkpoint owner %v, want %s", doc.Owner, r2.in.owner.ID)
	}

	// Restarted at 15:00:55, the first holder waits for r2's lease: a
	// standby, not lapsed.
	setup, metrics = exporting(t)
	if _, err := connectClockRunWith(t, b.conf(0), at14(60).Add(55*time.Second), setup); !errors.Is(err, errCheckpointHeld) {
		t.Fatalf("the restarted holder connected while r2 held the checkpoint: %v", err)
	}
	wantLapsed(t, metrics, 0, "the standby")
}

// A holder whose store fails every read and write lets its lease lapse;
// no one takes over. Once its store answers, its renewal claims the lease
// again (the checkpoint read back naming it, then its claim) and it reads
// the object of hour 15 it held back, once.
func TestInputLeaseLapsedInAStoreOutageResumesOnceClaimedAgain(t *testing.T) {
	b := newOutageBuckets(t)
	r1, metrics, first, next := lapseAcrossTheHour(t, b)

	b.restore(0)
	if err := r1.clock.BlockUntilContext(r1.ctx, 2); err != nil { // the next poll's and renewal's timers
		t.Fatal(err)
	}
	r1.clock.Advance(20 * time.Second)
	r1.got.waitFor(t, next)
	r1.logs.waitFor(t, "claimed it again", 1)
	wantLapsed(t, metrics, 0, "the holder that claimed its lease again")
	expectExactly(t, r1.got, union(first, next))
	if doc := b.doc(0); doc.Owner == nil || doc.Owner.ID != r1.in.owner.ID {
		t.Fatalf("checkpoint owner %v, want %s", doc.Owner, r1.in.owner.ID)
	}
}
