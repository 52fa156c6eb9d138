package brazecurrents

import (
	"fmt"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// lateFile writes one object of emailSend in hour, numbered n, and returns
// its key and event ids.
func lateFile(t *testing.T, dir string, hour time.Time, n int) (string, map[string]bool) {
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa",
		Records: 5, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n}
	return fixtures.Key(spec), writeFixture(t, dir, spec)
}

// Braze writes a file into hour 10 at 14:20, after the listing of 14:10
// settled hours up to 11 (late_arrival 2h): a delay longer than
// late_arrival. The listing of the partition's directory after 15:10 lists
// the settled hours of the last late_lookback again, finds the file, counts
// it in braze_currents_objects_late, warns naming it and its hour, and reads
// it; the next such listing, after 16:10, reads nothing again. Stopped, the
// process keeps what it read in the checkpoint: a file written into hour 11
// meanwhile is read by the next process's first pass, and nothing else.
// Before, an hour behind the watermark was never listed again: the file was
// neither read, nor counted, nor logged.
func TestInputReadsAFileWrittenIntoASettledHour(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h", dir)
	ten, eleven := at14(0).Add(-4*time.Hour), at14(0).Add(-3*time.Hour)
	_, want := lateFile(t, dir, ten, 0)
	res, metrics := promscrape.Resources(t)
	r, err := connectClockRunWith(t, conf, at14(10), func(in *currentsInput) { in.stats = newInputStats(res.Metrics(), in.log) })
	if err != nil {
		t.Fatal(err)
	}
	r.pass(0)
	r.got.waitFor(t, want)
	r.waitCheckpointed(1) // done: the watermark passed hour 10

	// 14:20, the late file; the polls up to 15:09 list hours 12 to 15, the
	// one at 15:10 the partition's directory, and hours 10 and 11 again.
	r.clock.Advance(10 * time.Minute)
	key, late := lateFile(t, dir, ten, 7)
	want = union(want, late)
	for n := 1; n <= 50; n++ {
		r.poll(n, time.Minute)
	}
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.logs.waitFor(t, "Found "+key+" in hour 2026-12-01-10, which had already counted as done", 1)
	if n, _ := promscrape.Get(t, metrics).Counter("braze_currents_objects_late", "", ""); n != 1 {
		t.Fatalf("braze_currents_objects_late is %v, want 1", n)
	}

	// 16:10: the directory listed again, hours 10 and 11 too; nothing new.
	r.poll(51, time.Hour)
	r.poll(52, time.Minute)
	expectExactly(t, r.got, want)
	if n, _ := promscrape.Get(t, metrics).Counter("braze_currents_objects_late", "", ""); n != 1 {
		t.Fatalf("braze_currents_objects_late is %v after the next look back, want 1", n)
	}
	r.close()

	// While no process runs, a file lands in hour 11, settled by then.
	key2, late2 := lateFile(t, dir, eleven, 8)
	r2 := startClockRun(t, conf, at14(150))
	r2.pass(0)
	r2.got.waitFor(t, late2)
	expectExactly(t, r2.got, late2)
	r2.logs.waitFor(t, "Found "+key2+" in hour 2026-12-01-11", 1)
}
