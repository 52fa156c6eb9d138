package brazecurrents

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

const defaultCheckpoint = "currents-connect-checkpoint-currents-shard-0-of-1"

// holdAt stalls the pipeline on the first object done whose key holds match
// (Segment down): with max_parallel_objects 1, the reader then waits to
// hand over the next object's events, and the walk to hand over the one
// after.
type holdAt struct {
	match   string
	reached chan struct{}
	held    chan struct{}
	once    sync.Once
	freed   sync.Once
}

func newHoldAt(match string) *holdAt {
	return &holdAt{match: match, reached: make(chan struct{}), held: make(chan struct{})}
}

// holding installs holds on the input, to set up before it connects.
func holding(holds ...*holdAt) func(*currentsInput) {
	return func(in *currentsInput) {
		in.objectSettled = func(key, _ string) {
			for _, h := range holds {
				if strings.Contains(key, h.match) {
					h.once.Do(func() { close(h.reached) })
					<-h.held
				}
			}
		}
	}
}

func (h *holdAt) release() { h.freed.Do(func() { close(h.held) }) }

// reach waits until the held object is done.
func (h *holdAt) reach(r *clockRun) {
	r.t.Helper()
	select {
	case <-h.reached:
	case <-r.ctx.Done():
		r.t.Fatalf("no object %s got done", h.match)
	}
}

// wait waits until the held object is done and the checkpoint saved with
// it: every partition the walk left before it has settled by then.
func (h *holdAt) wait(r *clockRun) {
	r.t.Helper()
	h.reach(r)
	r.waitCheckpointed(r.in.ckpt.finishedCount())
}

// sums describes a partition of a checkpoint document, for messages.
func sums(pd *partitionDone) string {
	if pd == nil {
		return "nothing"
	}
	return fmt.Sprintf("watermark %q, %d done keys", pd.Watermark, len(pd.Done))
}

// typeDir is the key segment of eventType's directory.
func typeDir(eventType string) string { return "/event_type=" + eventType + "/" }

// noPassEnded checks that the first pass is still under way.
func (r *clockRun) noPassEnded() {
	r.t.Helper()
	select {
	case n := <-r.passes:
		r.t.Fatalf("pass %d ended: want it still handing out objects", n)
	default:
	}
}

// A backfill's first pass lists one event type's 24 closed hours, then
// another's, which the pipeline is still reading: the first type settles as
// its listing ends, so the saved checkpoint gives it a watermark and drops
// its done keys while the pass goes on. Before, no partition settled until
// the whole pass was handed out, and the document, saved every few objects,
// kept every done key of the backfill.
func TestInputSettlesEachPartitionAsItsListingEnds(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h", dir)
	start := at14(10) // hours up to 11 closed (late_arrival 2h)
	want := map[string]bool{}
	for h := 1; h <= 24; h++ { // hours 10 back to a day before
		want = union(want, hourFile(t, dir, uninstall, at14(0).Add(-time.Duration(h+3)*time.Hour), h))
	}
	for n := range 3 {
		want = union(want, hourFile(t, dir, emailSend, at14(0).Add(-10*time.Hour), 30+n))
	}
	hold := newHoldAt(typeDir(emailSend))
	defer hold.release()
	r, err := connectClockRunWith(t, conf, start, holding(hold))
	if err != nil {
		t.Fatal(err)
	}
	hold.wait(r)
	r.noPassEnded()
	doc := savedCheckpoint(t, "file://"+dir, defaultCheckpoint)
	if pd := doc.Partitions[r.partition(t, uninstall)]; pd == nil || pd.Watermark != "2026-12-01-11" || len(pd.Done) != 0 {
		t.Fatalf("saved while %s is read, %s, listed in full and done: %s; want watermark hour 11 and no done key", emailSend, uninstall, sums(pd))
	}
	if pd := doc.Partitions[r.partition(t, emailSend)]; pd == nil || pd.Watermark != "" || len(pd.Done) != 1 {
		t.Fatalf("saved while %s is read: %s; want its done key, no watermark", emailSend, sums(pd))
	}

	hold.release()
	r.pass(0)
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.waitCheckpointed(24 + 3)
	if w, _ := r.in.ckpt.watermark(r.partition(t, emailSend)); !w.Equal(at14(0).Add(-3 * time.Hour)) {
		t.Fatalf("watermark of %s after the pass: %v, want hour 11", emailSend, w)
	}
}

// A partition one of whose hours cannot be listed settles only up to the
// hour before it, neither past it nor as the walk leaves it, while one
// listed in full after it does; a later pass that lists the hour reads it
// and settles the partition.
func TestInputPartitionListedInPartDoesNotSettleEarly(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	// Listed in this order: behaviors, messages.email, messages.sms.
	upload := func(eventType string, hour time.Time, n int) map[string]bool {
		return uploadFixture(t, b, fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
			Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n})
	}
	want := map[string]bool{}
	for i, eventType := range []string{uninstall, emailSend} {
		for h := 9; h <= 11; h++ {
			want = union(want, upload(eventType, at14(0).Add(time.Duration(h-14)*time.Hour), 10*i+h))
		}
	}
	for n := range 3 {
		want = union(want, upload(smsSend, at14(0).Add(-3*time.Hour), 30+n))
	}
	var refusing atomic.Bool
	refusing.Store(true)
	hour10 := "/event_type=" + uninstall + "/date=2026-12-01-10/"
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if refusing.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Query().Get("prefix"), hour10) {
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	hold := newHoldAt(typeDir(smsSend))
	defer hold.release()
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 5m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h"
	r, err := connectClockRunWith(t, conf, at14(10), func(in *currentsInput) {
		holding(hold)(in)
		// The clock moves only while no object is downloading: a move past
		// read_timeout would stall a read, which a retry would then hide.
		advance := in.readRetrying
		in.readRetrying = func(key string, wait time.Duration) {
			t.Errorf("read of %s retried (in %v): the bucket never refuses one", key, wait)
			advance(key, wait)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	hold.wait(r)
	r.noPassEnded()
	doc := savedCheckpoint(t, b.URL, defaultCheckpoint)
	// Hour 9 settled as the listing passed it; nothing after the refusal.
	if pd := doc.Partitions[r.partition(t, uninstall)]; pd == nil || pd.Watermark != "2026-12-01-09" || len(pd.Done) != 1 {
		t.Fatalf("saved while %s is read, %s, its hour 10 refused: %s; want watermark hour 9, the done key of hour 11", smsSend, uninstall, sums(pd))
	}
	if pd := doc.Partitions[r.partition(t, emailSend)]; pd == nil || pd.Watermark != "2026-12-01-11" || len(pd.Done) != 0 {
		t.Fatalf("saved while %s is read, %s, listed in full and done: %s; want watermark hour 11 and no done key", smsSend, emailSend, sums(pd))
	}

	hold.release()
	r.pass(0)
	r.waitCheckpointed(3*3 - 1) // every object but hour 10's read: none downloading as the clock moves
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-5 * time.Hour)) {
		t.Fatalf("%s's watermark after a pass that could not list its hour 10: %v, want hour 9", uninstall, w)
	}
	refusing.Store(false)
	r.poll(1, time.Minute) // after the backoff of a pass that failed
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.waitCheckpointed(3 * 3)
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-3 * time.Hour)) {
		t.Fatalf("watermark of %s once its hour 10 was listed and read: %v, want hour 11", uninstall, w)
	}
}

// A partition settles as its listing ends by when the pass started, not by
// the clock then: here the pass started at 14:10 and the walk leaves the
// partition at 16:30, after its hour 12 closed (15:00), into which a file
// landed at 14:55, after the pass listed that hour. Hour 12 stays above the
// watermark until a listing that starts after 15:00, which reads the file,
// and, as that listing goes hour by hour, until the partition's directory
// is listed again.
func TestInputSettlesAPartitionByWhenItsPassStarted(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h", dir)
	eleven, twelve := at14(0).Add(-3*time.Hour), at14(0).Add(-2*time.Hour)
	want := hourFile(t, dir, uninstall, eleven, 0)
	for n := 1; n <= 3; n++ {
		want = union(want, hourFile(t, dir, uninstall, twelve, n))
	}
	for n := range 3 {
		want = union(want, hourFile(t, dir, emailSend, eleven, 10+n))
	}
	// Held on hour 12's first object, the walk hands out its third: it is
	// still listing the partition while the clock moves.
	inTwelve := newHoldAt(typeDir(uninstall) + "date=" + twelve.Format(DateHourLayout) + "/")
	inEmail := newHoldAt(typeDir(emailSend))
	defer inTwelve.release()
	defer inEmail.release()
	r, err := connectClockRunWith(t, conf, at14(10), holding(inTwelve, inEmail))
	if err != nil {
		t.Fatal(err)
	}
	inTwelve.reach(r)
	r.clock.Advance(45 * time.Minute)
	want = union(want, hourFile(t, dir, uninstall, twelve, 4))
	r.clock.Advance(95 * time.Minute)
	inTwelve.release()
	inEmail.wait(r)
	r.noPassEnded()
	partition := r.partition(t, uninstall)
	doc := savedCheckpoint(t, "file://"+dir, defaultCheckpoint)
	if pd := doc.Partitions[partition]; pd == nil || pd.Watermark != "2026-12-01-11" || len(pd.Done) < 3 {
		t.Fatalf("saved at 16:30 while %s is read, %s: %s; want watermark hour 11, the done keys of hour 12", emailSend, uninstall, sums(pd))
	}

	inEmail.release()
	r.pass(0)
	r.poll(1, time.Minute)
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.waitCheckpointed(5 + 3)
	if w, _ := r.in.ckpt.watermark(partition); !w.Equal(eleven) {
		t.Fatalf("watermark of %s after a poll hour by hour at 16:31: %v, want hour 11, the last closed when its directory was listed at 14:10", uninstall, w)
	}
	r.poll(2, relearnLayout) // 17:31: the directory again
	if w, _ := r.in.ckpt.watermark(partition); !w.Equal(at14(0)) {
		t.Fatalf("watermark of %s after the listing of its directory at 17:31: %v, want hour 14", uninstall, w)
	}
}

// A level between event_type= and date= (Braze warns its layout may
// change): an object's partition is its event_type= directory, the one the
// walk lists and settles. Before, it was the key up to date=, a partition
// the walk never settled: no watermark, every done key kept for ever and
// every hour listed at every poll.
func TestInputSettlesALayoutWithALevelBeforeDate(t *testing.T) {
	dir := t.TempDir()
	conf := "url: file://" + dir + "\nwatch: true\npoll_interval: 1h\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 1000h"
	file := func(hour time.Time) (map[string]bool, string) {
		spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: uint64(hour.Unix()), DateHour: hour}
		h := hour.Format(DateHourLayout)
		key := strings.Replace(fixtures.Key(spec), "/date="+h+"/version=1/", "/version=1/date="+h+"/", 1)
		return writeFixtureAt(t, dir, key, spec), key
	}
	r := startClockRun(t, conf, time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC))
	r.pass(0)
	const hours = 24
	var partition string
	for i := 1; i <= hours; i++ {
		want, key := file(r.clock.Now().Truncate(time.Hour))
		partition, _, _ = strings.Cut(key, "/version=1/")
		r.poll(i, time.Hour)
		r.got.waitFor(t, want)
	}
	r.waitCheckpointed(hours)
	doc, size := r.savedDoc(t)
	if len(doc.Partitions) != 1 || doc.Partitions[partition] == nil {
		t.Fatalf("partitions %v, want only %s", slices.Collect(maps.Keys(doc.Partitions)), partition)
	}
	// Hours settle late_arrival (2h) after they end: the last ones are still open.
	if pd := doc.Partitions[partition]; pd.Watermark == "" || len(pd.Done) > 4 {
		t.Fatalf("after %d hours, one object an hour: %d done keys, watermark %q (checkpoint %d bytes)", hours, len(pd.Done), pd.Watermark, size)
	}
}
