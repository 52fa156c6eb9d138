package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// inputConfig reads bucketURL with a checkpoint in the bucket and appends
// every event's id and key to outPath.
func inputConfig(bucketURL, outPath string) string {
	return `
http:
  enabled: false # no port to share with other runs: the binary stops a run whose server cannot listen
input:
  braze_currents:
    url: "` + bucketURL + `"
    include_event_types: ["*"]
    checkpoint:
      in_bucket: true
      lease: 3s # as shortLease
    max_parallel_objects: 2
    batch_size: 50
pipeline:
  processors:
    - mapping: 'root = {"id": this.id, "key": @braze_key}'
output:
  file:
    path: ` + outPath + `
    codec: lines
logger:
  level: info
  format: logfmt
`
}

// TestKill9ThenResume kills the pipeline with SIGKILL at several points of
// a backfill, then lets a last run finish: every event must come out, and
// the re-sent objects must be no more than those in flight at each kill.
func TestKill9ThenResume(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 3, RecordsPerFile: 40, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(inputConfig("file://"+bucket, outPath)), 0o644); err != nil {
		t.Fatal(err)
	}
	kills := []int{15, 40, 60}
	for _, n := range kills {
		p := startConnect(t, dir, nil, nil, "-c", "config.yaml")
		p.waitLines(n, 2*time.Minute, "Object done")
		p.kill9()
	}
	if out, err := runConnect(t, dir, nil, "-c", "config.yaml"); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}

	seen, keysSeen, torn := readKilledLines(t, outPath)
	// SIGKILL can cut a write that crosses a page of the file (Linux checks
	// for it between pages): at most one record a kill.
	if torn > len(kills) {
		t.Fatalf("%d records cut short in %s, more than the %d kills", torn, outPath, len(kills))
	}
	resent := 0
	for _, w := range written {
		for _, r := range w.Records {
			if seen[r["id"].(string)] == 0 {
				t.Fatalf("event %s of %s never came out", r["id"], w.Key)
			}
		}
		if keysSeen[w.Key] > len(w.Records) {
			resent++
		}
	}
	// What a kill can re-send is bounded by design: the objects in flight (2
	// being read, and those whose batches the pipeline holds: a mapping
	// thread and the output, a few) plus the done ones not yet in the saved
	// checkpoint, which readers keep to at most max_parallel_objects (2) more
	// than were in flight, however slow the saver. That is under 16 a kill.
	// Without a working checkpoint every object done before each kill
	// (15+40+60) would come again.
	if limit := len(kills) * 16; resent > limit {
		t.Fatalf("%d objects re-sent after %d kills, more than the %d that can be in flight", resent, len(kills), limit)
	}
	t.Logf("%d objects, %d re-sent in part or whole after %d kills", len(written), resent, len(kills))
}

// readKilledLines reads the {"id", "key"} records of a file output that
// was killed several times: how often each id and key came out, and how
// many records a kill cut short. The file output writes a message and its
// newline in two writes, so a kill between them glues the next run's first
// record to it: records are read as JSON values one after the other, and a
// cut one is skipped to the next record's start.
func readKilledLines(t *testing.T, path string) (ids, keys map[string]int, torn int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids, keys = map[string]int{}, map[string]int{}
	for rest := bytes.TrimSpace(data); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		dec := json.NewDecoder(bytes.NewReader(rest))
		var ev struct{ ID, Key string }
		if err := dec.Decode(&ev); err != nil {
			torn++
			next := bytes.Index(rest[1:], []byte(`{"`))
			if next < 0 {
				break
			}
			rest = rest[next+1:]
			continue
		}
		ids[ev.ID]++
		keys[ev.Key]++
		rest = rest[dec.InputOffset():]
	}
	return ids, keys, torn
}

// TestProgressIsLogged checks the per-object line and the periodic summary.
func TestProgressIsLogged(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	// A dozen objects: the lines are tested, not a long run.
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: fixtures.EventTypes()[:6], FilesPerType: 2,
		RecordsPerFile: 500, Seed: 22}); err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(inputConfig("file://"+bucket, filepath.Join(dir, "out.jsonl")), "batch_size: 50", "batch_size: 50\n    progress_interval: 1ms", 1)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runConnect(t, dir, nil, "-c", "config.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Object done", "500 events in", "Progress:", "objects done", "events/s", "time left"} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %q:\n%s", want, lastLines(out, 20))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprint(strings.Join(lines, "\n"))
}
