package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	parallelCPU(t)
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

// checkpointHolder is a watching pipeline on checkpointTree's bucket that
// has sent every event and holds the checkpoint.
type checkpointHolder struct {
	dir    string
	want   map[string]string
	srv    *segmentapi.Server
	events *notifier
	env    []string // for a second process on the same checkpoint
	first  *connectProc
}

func startCheckpointHolder(t *testing.T, seed uint64, lease string) checkpointHolder {
	t.Helper()
	h := checkpointHolder{srv: segmentapi.StartT(t, e2eWriteKey), events: newNotifier()}
	h.dir, h.want = checkpointTree(t, seed)
	h.srv.OnRequest(func(*http.Request, []segmentapi.Call) { h.events.notify() })
	h.env = append(pipelineEnv("file://"+h.dir, h.srv, filepath.Join(t.TempDir(), "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true"),
		"CURRENTS_WATCH=true", "CURRENTS_POLL_INTERVAL=1s", "CURRENTS_CHECKPOINT_LEASE="+lease)
	h.first = startConnect(t, repoRoot, h.env, h.events)
	waitFor(t, h.events, time.Minute, "the first process to send every event", func() (bool, error) {
		if h.first.exited() {
			return false, fmt.Errorf("the first process exited: %v\n%s", h.first.err, lastLines(h.first.logs(), 20))
		}
		return h.srv.UniqueMessageIDs() == len(h.want), nil
	})
	return h
}

// A second process started on the checkpoint another one holds (a rolling
// update, or two replicas without shards) waits, saying who holds it, and
// sends nothing until the first stops; then it takes over where the first
// stopped. Nothing is sent twice.
func TestSecondProcessOnOneCheckpointWaits(t *testing.T) {
	parallelWaiting(t)
	// The default lease, not shortLease: on a busy machine a lease of
	// seconds may lapse between renewals, and the second process would
	// then rightly take the checkpoint over.
	h := startCheckpointHolder(t, 82, "1m")
	dir, want, srv, first := h.dir, h.want, h.srv, h.first
	second := startConnect(t, repoRoot, h.env, h.events)
	second.waitLines(2, time.Minute, "is held by", "waiting for it to stop")
	if n := second.count("Object done"); n != 0 {
		t.Fatalf("the second process finished %d objects while the first held the checkpoint", n)
	}

	// The first stops cleanly; the second takes over and reads a new file.
	first.sigterm()
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

// A process frozen past its lease (SIGSTOP: a paused VM) while a second one
// takes the checkpoint over, then thawed: the one that lost the checkpoint
// stops reading and exits with status 1, saying why, so that a supervisor
// (Kubernetes, systemd's Restart=on-failure) starts it again as a standby
// that waits for the lease; with status 0 it stayed down. The other runs on.
// Which one loses is the frozen one, unless a save of its own was in flight
// at the freeze and lands over the new holder's claim: then the new holder
// loses. Either way exactly one exits, with status 1.
func TestProcessThatLostItsCheckpointExitsWithFailure(t *testing.T) {
	parallelWaiting(t)
	h := startCheckpointHolder(t, 86, "3s")
	first, events := h.first, h.events
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	second := startConnect(t, repoRoot, h.env, events)
	second.waitLines(1, time.Minute, "Checkpoint kept in", "held by")
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, time.Minute, "one of the two processes to exit", func() (bool, error) {
		return first.exited() || second.exited(), nil
	})
	lost, other := first, second
	if second.exited() {
		lost, other = second, first
	}
	var exit *exec.ExitError
	if !errors.As(lost.err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("the process that lost the checkpoint exited with %v, want status 1:\n%s", lost.err, lastLines(lost.logs(), 20))
	}
	lost.waitLines(1, time.Second, "Exiting with status 1: another process took the checkpoint over")
	if other.exited() {
		t.Fatalf("both processes exited; the one holding the checkpoint with %v:\n%s", other.err, lastLines(other.logs(), 20))
	}
}

// A checkpoint in a file cache, killed during its first save (the claim at
// start: the cache truncates the slot, then writes it, and SIGKILL between
// the two leaves it empty, as it did in 19 of 150 kills timed at that save):
// the next run starts without a checkpoint, saying so, reads everything and
// saves; the one after reads nothing. It failed to connect, for ever.
func TestCheckpointFirstSaveCutInACache(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: fixtures.EventTypes()[:3], FilesPerType: 2,
		RecordsPerFile: 10, Seed: 84})
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "ck.b"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "out.jsonl")
	config := strings.Replace(inputConfig("file://"+bucket, outPath), "      in_bucket: true\n", "      cache: ck\n      key: ck\n", 1) +
		"cache_resources:\n  - label: ck\n    file:\n      directory: " + cache + "\n"
	config = strings.Replace(config, "    checkpoint:", "    watch: false\n    checkpoint:", 1)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		events := newNotifier()
		p := startConnect(t, dir, nil, events, "-c", "config.yaml")
		waitFor(t, events, time.Minute, "the run to end", func() (bool, error) {
			if p.count("Failed to connect") > 0 {
				return false, fmt.Errorf("run %d cannot start:\n%s", run+1, lastLines(p.logs(), 5))
			}
			return p.exited(), nil
		})
		if p.err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, p.err, lastLines(p.logs(), 10))
		}
		if cut := p.count("first save was cut short") > 0; cut != (run == 0) {
			t.Fatalf("run %d: the cut first save said: %v\n%s", run+1, cut, lastLines(p.logs(), 10))
		}
	}
	ids, _, _ := readKilledLines(t, outPath)
	for _, w := range written {
		for _, r := range w.Records {
			if ids[r["id"].(string)] != 1 {
				t.Fatalf("event %s of %s came out %d times, want once", r["id"], w.Key, ids[r["id"].(string)])
			}
		}
	}
}
