package brazecurrents

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// Braze moves a partition listed hour by hour to another layout
// (version=2/date=<hour>/) just after the listing of its directory at 12:59
// saw only the old one: hour 10's on-time file lands in the new layout at
// 12:59:30. The 13:01 poll lists date= hours alone and would settle hour
// 10, closed at 13:00 (late_arrival 2h); the 13:59 listing of the directory
// would then prune version=2/date=<hour 10>/ as done, unread. A poll hour by
// hour settles only the hours closed when the last listing of the
// partition's directory started, so the next one, which meets the new
// layout, finds hour 10 open.
func TestInputPollHourByHourLosesNoHourToALayoutChange(t *testing.T) {
	r, dir, _, want := startLayoutChange(t)
	moved := movedFile(t, dir)
	r.poll(1, 2*time.Minute) // 13:01: hour by hour
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-5 * time.Hour)) {
		t.Fatalf("watermark after the poll hour by hour at 13:01: %v, want hour 9, the last closed when the directory was listed at 12:59", w)
	}
	r.poll(2, 58*time.Minute) // 13:59: the directory again (relearnLayout)
	checkMovedRead(t, r, 2, union(want, moved))
}

// The same with a restart at 13:59 in place of the hourly listing of the
// directory: the checkpoint saved after the 13:01 poll must not cover hour
// 10 either.
func TestInputRestartLosesNoHourToALayoutChangeSeenHourByHour(t *testing.T) {
	r, dir, conf, _ := startLayoutChange(t)
	moved := movedFile(t, dir)
	r.poll(1, 2*time.Minute)
	r.waitCheckpointed(1)
	r.close()
	if pd := savedCheckpoint(t, "file://"+dir, defaultCheckpoint).Partitions[r.partition(t, uninstall)]; pd == nil || pd.Watermark != "2026-12-01-09" {
		t.Fatalf("saved after the poll hour by hour at 13:01: %s; want watermark hour 9", sums(pd))
	}
	r2 := startClockRun(t, conf, at14(-1)) // 13:59
	r2.pass(0)
	checkMovedRead(t, r2, 1, moved)
}

// startLayoutChange starts a watch run at 12:59 over hour 9 of the old
// layout and waits until its object is done.
func startLayoutChange(t *testing.T) (r *clockRun, dir, conf string, want map[string]bool) {
	dir = t.TempDir()
	conf = fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10m", dir)
	want = hourFile(t, dir, uninstall, at14(0).Add(-5*time.Hour), 0)
	r = startClockRun(t, conf, at14(-61))
	r.pass(0)
	r.got.waitFor(t, want)
	r.waitCounts("1 object done", func(c inputCounts) bool { return c.done == 1 && c.inFlight == 0 })
	return r, dir, conf, want
}

// movedFile writes an object of hour 10 in the new layout.
func movedFile(t *testing.T, dir string) map[string]bool {
	spec := fixtures.FileSpec{EventType: uninstall, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 5, Seed: 110, DateHour: at14(0).Add(-4 * time.Hour), Offset: 1}
	hour := "date=" + spec.DateHour.Format(DateHourLayout)
	return writeFixtureAt(t, dir, strings.Replace(fixtures.Key(spec), "/"+hour+"/version=1/", "/version=2/"+hour+"/", 1), spec)
}

// checkMovedRead checks that the pass just ended handed out hour 10's
// object in the new layout, the run's objects-th, and that the run's
// events, want, arrive once.
func checkMovedRead(t *testing.T, r *clockRun, objects int64, want map[string]bool) {
	t.Helper()
	if c := r.in.counts(); c.done+int64(c.inFlight) < objects {
		t.Fatalf("the listing that met version=2/ handed out nothing (%+v): hour 10's object in the new layout was taken as done, unread", c)
	}
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	if got := r.logs.matching("another layout"); len(got) != 1 || !strings.Contains(got[0], typeDir(uninstall)+"version=2/ follows") {
		t.Fatalf("warnings logged for the new layout: %q; want one, naming version=2/", got)
	}
}
