package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

func TestBinaryListsScannerAndVersion(t *testing.T) {
	parallelCPU(t)
	out, err := runConnect(t, ".", nil, "list", "scanners")
	if err != nil || !strings.Contains(out, "- braze_currents\n") {
		t.Fatalf("list scanners: %v\n%s", err, out)
	}
	out, err = runConnect(t, ".", nil, "--version")
	if err != nil || !strings.Contains(out, "Version: 0.") {
		t.Fatalf("--version: %v\n%s", err, out)
	}
}

// TestFileInputDecodesEveryFixtureOnce runs file + braze_currents over a
// bucket tree of every event type and every codec, with damaged files mixed
// in, and checks that every event came out exactly once and that each bad
// file was reported by name while the others flowed, the run exiting 1.
func TestFileInputDecodesEveryFixtureOnce(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	want := map[string]string{} // event id -> event type
	for i, codec := range []string{"null", "deflate", "snappy"} {
		written, err := fixtures.WriteTree(filepath.Join(bucket, codec), fixtures.TreeOptions{
			FilesPerType: 1, RecordsPerFile: 25, Codec: codec, Seed: uint64(i + 10)})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range written {
			for _, r := range w.Records {
				want[r["id"].(string)] = w.Spec.EventType
			}
		}
	}

	// A truncated copy of a good file: its first block must still come out.
	var good bytes.Buffer
	truncRecords, err := fixtures.WriteFile(&good, fixtures.FileSpec{EventType: "users.messages.sms.Delivery",
		Records: 20, BlockRecords: 10, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range truncRecords[:10] {
		want[r["id"].(string)] = "users.messages.sms.Delivery"
	}
	bad := map[string][]byte{
		"bad/truncated.avro": good.Bytes()[:good.Len()-30],
		"bad/empty.avro":     nil,
		"bad/notavro.avro":   []byte("PK\x03\x04 this is a zip file"),
	}
	for name, data := range bad {
		path := filepath.Join(bucket, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	outPath := filepath.Join(dir, "events.jsonl")
	config := `
http:
  enabled: false # no port to share with other runs: the binary stops a run whose server cannot listen
input:
  file:
    paths: [ "bucket/**/*.avro" ]
    scanner:
      braze_currents: {}
pipeline:
  processors:
    - mapping: 'root = {"id": this.id, "type": @braze_event_type}'
output:
  file:
    path: ` + outPath + `
    codec: lines
logger:
  level: warn
  format: logfmt
`
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The damaged files' events after the damage were never read: the run
	// says so with status 1, once it delivered what it could.
	logs, err := runConnect(t, dir, nil, "-c", "config.yaml")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(logs, "Exiting with status 1: the file input could not read a file to its end") {
		t.Fatalf("connect ended with %v, want status 1 naming a file it could not read to its end:\n%s", err, logs)
	}

	seen := map[string]int{}
	f, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		var ev struct{ ID, Type string }
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("bad output line %q", lines.Text())
		}
		if want[ev.ID] != ev.Type {
			t.Fatalf("event %s came out as %q, written as %q", ev.ID, ev.Type, want[ev.ID])
		}
		seen[ev.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s came out %d times", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct events out, %d expected", len(seen), len(want))
	}
	for name, fragment := range map[string]string{
		"bad/truncated.avro": "truncated block",
		"bad/notavro.avro":   "not an Avro object container file",
		"bad/empty.avro":     "empty object",
	} {
		if !strings.Contains(logs, name) || !strings.Contains(logs, fragment) {
			t.Errorf("logs do not report %s (%s):\n%s", name, fragment, logs)
		}
	}
}

// TestDemoCommand runs the README's demo command and checks that it prints
// the exact bodies it would POST on stdout: one call per sample event of the
// 50 types whose user has an external_user_id (Braze skips anonymous users);
// and on stderr only the two lines that account for every event read.
func TestDemoCommand(t *testing.T) {
	parallelCPU(t)
	out, stderr, err := runSplit(t, "..", nil, "-c", "config/demo.yaml")
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, stderr)
	}
	// The sample is generated with these options (tests/fixtures/gen.go).
	written, err := fixtures.WriteTree(t.TempDir(), fixtures.TreeOptions{RecordsPerFile: 20, FilesPerType: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	objects, read, anonymous := 0, 0, 0
	for _, w := range written {
		ev, forwarded := fixtures.SegmentEvents()[w.Spec.EventType]
		if !forwarded {
			continue // the demo's input lists only the 50 types
		}
		objects++
		for _, r := range w.Records {
			read++
			if r["external_user_id"] == nil {
				anonymous++
				continue
			}
			want[r["id"].(string)] = ev.Name
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var body struct {
			MessageID string `json:"messageId"`
			Batch     []struct {
				Type, Event, MessageID, UserID string
			}
		}
		if err := json.Unmarshal([]byte(line), &body); err != nil || body.MessageID == "" || len(body.Batch) == 0 || len(body.Batch) > 500 {
			t.Fatalf("demo printed a line that is not a /v1/batch body: %.300s", line)
		}
		for _, c := range body.Batch {
			if c.Type != "track" || c.UserID == "" {
				t.Fatalf("call %+v", c)
			}
			got[c.MessageID] = c.Event
		}
	}
	if len(got) != len(want) {
		t.Fatalf("demo sent %d calls, want %d", len(got), len(want))
	}
	for id, name := range want {
		if got[id] != name {
			t.Fatalf("event %s sent as %q, want %q", id, got[id], name)
		}
	}
	// read = sent + failed + filtered out, the anonymous events here.
	summaries := []string{
		fmt.Sprintf("Run done: %d objects read (0 corrupt), 0 left for a later pass; %d events read, %d acknowledged; %d had no external_user_id",
			objects, read, read, anonymous),
		fmt.Sprintf("Segment output closed: %d calls printed (dry run, nothing sent), 0 failed, 0 unconfirmed at shutdown.", len(want)),
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != len(summaries) {
		t.Fatalf("demo's stderr has %d lines, want the %d summaries:\n%s", len(lines), len(summaries), stderr)
	}
	for i, s := range summaries {
		if !strings.Contains(lines[i], s) {
			t.Errorf("stderr line %d:\n%s\nwant\n%s", i+1, lines[i], s)
		}
	}
}
