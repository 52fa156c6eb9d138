package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// The shipped pipeline over a Cloud Storage bucket (the emulator, which the
// binary reaches through STORAGE_EMULATOR_HOST), with its header's bucket
// dead letter output in place of the file: Segment rejects every call, and
// every event lands once, with its reason, in objects beside the Currents
// files.
func TestDeadLettersToTheBucket(t *testing.T) {
	parallelCPU(t)
	b := buckets.StartGCS(t)
	tree := t.TempDir()
	written, err := fixtures.WriteTree(tree, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes()[:3],
		FilesPerType: 2, RecordsPerFile: 10, Seed: 91, Conn: "GCS"})
	if err != nil {
		t.Fatal(err)
	}
	buckets.UploadDir(t, b, tree)
	want, noUser := expectedIDs(written)
	srv := segmentapi.StartT(t, e2eWriteKey)
	srv.FailNext(1_000_000, 400)
	unused := filepath.Join(t.TempDir(), "dead.jsonl")
	env := bucketEnv(b, srv, unused)
	runToEnd(t, env, "-c", bucketDeadLetterConfig(t))

	if _, err := os.Stat(unused); !os.IsNotExist(err) {
		t.Fatalf("the dead letter file was written: %v", err)
	}
	// The objects' lines, gathered into one file for deadletter.Read.
	bkt := b.Open(t)
	var lines strings.Builder
	objects := 0
	it := bkt.List(&blob.ListOptions{Prefix: "currents-connect/dead-letters/"})
	for {
		obj, err := it.Next(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := bkt.ReadAll(t.Context(), obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(obj.Key, ".jsonl") || !strings.HasSuffix(string(data), "\n") {
			t.Fatalf("object %s is not JSON lines: %q", obj.Key, data)
		}
		lines.Write(data)
		objects++
	}
	gathered := filepath.Join(t.TempDir(), "gathered.jsonl")
	if err := os.WriteFile(gathered, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rejected := checkDeadLetters(t, srv, deadletter.Read(t, gathered, false), want, noUser, true, "400")
	if len(rejected) != len(want) {
		t.Fatalf("%d of the %d rejected calls are in the bucket", len(rejected), len(want))
	}
	t.Logf("%d dead letters in %d objects", len(want), objects)
}

// bucketDeadLetterConfig is the shipped config with the bucket output of its
// header in place of the dead letter file, applied as the header says.
func bucketDeadLetterConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, shippedConfig))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	start := strings.Index(conf, "#    - bucket:\n")
	end := strings.Index(conf[start:], "#\n")
	if start < 0 || end < 0 {
		t.Fatal("the shipped config's header has no bucket dead letter example")
	}
	var example strings.Builder
	for _, line := range strings.SplitAfter(conf[start:start+end], "\n") {
		example.WriteString(strings.TrimPrefix(line, "#"))
	}
	const file = "    - dead_letter_file:\n        path: \"${DEAD_LETTER_PATH:./dead-letter.jsonl}\"\n"
	if !strings.Contains(conf, file) {
		t.Fatal("the shipped config's dead letter file output changed: update the header's example and this test")
	}
	path := filepath.Join(t.TempDir(), "bucket_dead_letters.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(conf, file, example.String(), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
