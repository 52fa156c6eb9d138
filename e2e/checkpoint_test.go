package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// checkpointTree writes three queue hours (10, 11, 12 of the fixtures' day)
// of a few forwarded types into a file:// bucket.
func checkpointTree(t *testing.T, seed uint64) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes()[:6],
		FilesPerType: 36, RecordsPerFile: 5, Seed: seed}) // 12 files an hour
	if err != nil {
		t.Fatal(err)
	}
	want, _ := expectedIDs(written)
	return dir, want
}

// The README's one-off backfill recipe followed literally (a window, on the
// default checkpoint key), then a full run: every event reaches Segment,
// those before and after the window included.
func TestBackfillRecipeThenFullRun(t *testing.T) {
	t.Parallel()
	dir, want := checkpointTree(t, 81)
	srv := segmentapi.StartT(t, e2eWriteKey)
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	window := fixtures.DefaultDateHour.Add(time.Hour).Format("2006-01-02-15")
	env := pipelineEnv("file://"+dir, srv, dead, "BRAZE_INCLUDE_ANONYMOUS=true")
	backfill := runToEnd(t, append(env, "CURRENTS_SINCE="+window, "CURRENTS_UNTIL="+window))
	if n := backfill.count("Object done"); n != 6*12 {
		t.Fatalf("the window run finished %d objects, want the window's %d", n, 6*12)
	}
	inWindow := srv.UniqueMessageIDs()

	full := runToEnd(t, env)
	t.Logf("window run: %d ids; full run: %d objects done; %d ids in all", inWindow, full.count("Object done"), srv.UniqueMessageIDs())
	checkDelivered(t, srv, want)
	checkNothingNew(t, env, srv)
}

// A second process started on the checkpoint another one holds (a rolling
// update, or two replicas without shards) waits, saying who holds it, and
// sends nothing until the first stops; then it takes over where the first
// stopped. Nothing is sent twice.
func TestSecondProcessOnOneCheckpointWaits(t *testing.T) {
	t.Parallel()
	dir, want := checkpointTree(t, 82)
	srv := segmentapi.StartT(t, e2eWriteKey)
	events := newNotifier()
	srv.OnRequest(func(*http.Request, []segmentapi.Call) { events.notify() })
	// The default lease, not shortLease: on a busy machine a lease of
	// seconds may lapse between renewals, and the second process would
	// then rightly take the checkpoint over.
	env := append(pipelineEnv("file://"+dir, srv, filepath.Join(t.TempDir(), "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true"),
		"CURRENTS_WATCH=true", "CURRENTS_POLL_INTERVAL=1s", "CURRENTS_CHECKPOINT_LEASE=1m")

	first := startConnect(t, repoRoot, env, events)
	waitFor(t, events, time.Minute, "the first process to send every event", func() (bool, error) {
		if first.exited() {
			return false, fmt.Errorf("the first process exited: %v\n%s", first.err, lastLines(first.logs(), 20))
		}
		return srv.UniqueMessageIDs() == len(want), nil
	})
	second := startConnect(t, repoRoot, env, events)
	second.waitLines(2, time.Minute, "is held by", "waiting for it to stop")
	if n := second.count("Object done"); n != 0 {
		t.Fatalf("the second process finished %d objects while the first held the checkpoint", n)
	}

	// The first stops cleanly; the second takes over and reads a new file.
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	first.wait(time.Minute)
	more := writeSpec(t, dir, fixtures.FileSpec{EventType: fixtures.SegmentEventTypes()[0], Records: 5, Seed: 83,
		DateHour: fixtures.DefaultDateHour.Add(3 * time.Hour)})
	for _, r := range more.Records {
		if sendable(r) {
			want[r["id"].(string)] = more.Key
		}
	}
	second.waitLines(1, time.Minute, "Object done", more.Key)
	if n := second.count("Object done"); n != 1 {
		t.Fatalf("the second process finished %d objects, want only the new one:\n%s", n, lastLines(second.logs(), 20))
	}
	checkDelivered(t, srv, want)
	if d := srv.Duplicates(); d != 0 {
		t.Fatalf("%d calls sent twice", d)
	}
}
