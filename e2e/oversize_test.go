package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestOversizeRecordIsDeadLettered runs config/currents_to_segment.yaml over
// an object whose record 5 holds a field of 300 KiB, over the 256 KiB record
// limit: every other event reaches the stand-in, and the dead letter file
// holds one line for record 5 (its key, its index, the scanner's error), not
// the record. Replayed (config/dead_letters_to_segment.yaml), the line sends
// nothing and is dead-lettered again with a reason saying why.
func TestOversizeRecordIsDeadLettered(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	spec := fixtures.FileSpec{EventType: "users.messages.email.Send", Records: 20, BlockRecords: 8, Seed: 97, Codec: "deflate"}
	w := writeSpec(t, bucket, spec)
	w.Records[5]["message_extras"] = strings.Repeat("x", 300<<10)
	writeRecords(t, w)

	srv := segmentapi.StartT(t, e2eWriteKey)
	dead := filepath.Join(dir, "dead.jsonl")
	out, err := runConnect(t, repoRoot, pipelineEnv("file://"+bucket, srv, dead, "BRAZE_INCLUDE_ANONYMOUS=true"),
		"-c", "config/currents_to_segment.yaml")
	if err != nil {
		t.Fatalf("pipeline failed: %v\n%s", err, lastLines(out, 30))
	}
	var want []string
	for i, rec := range w.Records {
		if i != 5 {
			want = append(want, rec["id"].(string))
		}
	}
	checkUnder(t, srv, e2eWriteKey, want)
	if n := srv.UniqueMessageIDs(); n != len(want) {
		t.Fatalf("%d calls in the stand-in, want the %d events but record 5", n, len(want))
	}
	letters := deadletter.Read(t, dead, false)
	wantErr := fmt.Sprintf("braze_currents: record 5 of %q: ", w.Key)
	if len(letters) != 1 || !strings.HasPrefix(letters[0].Error, wantErr) || !strings.Contains(letters[0].Error, "over the 262144-byte record limit") ||
		letters[0].Source != w.Key || letters[0].EventType != spec.EventType {
		t.Fatalf("dead letters %.500v, want one for record 5 of %s with %q", letters, w.Key, wantErr)
	}
	var msg struct {
		Oversize struct {
			Source      string `json:"source"`
			RecordIndex int    `json:"record_index"`
		} `json:"oversize_record"`
	}
	if err := json.Unmarshal([]byte(letters[0].Message), &msg); err != nil || msg.Oversize.Source != w.Key || msg.Oversize.RecordIndex != 5 {
		t.Fatalf("dead letter message %.500s (%v), want where record 5 is", letters[0].Message, err)
	}

	replayed := filepath.Join(dir, "dead.replayed.jsonl")
	runToEnd(t, []string{"DEAD_LETTERS=" + dead, "DEAD_LETTER_PATH=" + replayed,
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + e2eWriteKey, "CONNECT_HTTP_ADDRESS=127.0.0.1:0"},
		"-c", "config/dead_letters_to_segment.yaml")
	if n := srv.UniqueMessageIDs(); n != len(want) {
		t.Fatalf("the replay sent %d calls, want none", n-len(want))
	}
	again := deadletter.Read(t, replayed, false)
	if len(again) != 1 || !strings.Contains(again[0].Error, "record 5 of "+w.Key) || again[0].Message != letters[0].Message {
		t.Fatalf("replayed dead letters %.500v, want record 5's again with why", again)
	}
}

// writeRecords writes w's records again over its file, in blocks of its
// spec's BlockRecords.
func writeRecords(t *testing.T, w fixtures.Written) {
	t.Helper()
	fields, err := w.Spec.ResolvedFields()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ocf, err := goavro.NewOCFWriter(goavro.OCFConfig{W: f, Schema: fixtures.Schema(fields, "S3", w.Spec.EventType), CompressionName: w.Spec.Codec})
	if err != nil {
		t.Fatal(err)
	}
	for from := 0; from < len(w.Records); from += w.Spec.BlockRecords {
		var block []any
		for _, rec := range w.Records[from:min(from+w.Spec.BlockRecords, len(w.Records))] {
			block = append(block, fixtures.Native(fields, rec))
		}
		if err := ocf.Append(block); err != nil {
			t.Fatal(err)
		}
	}
}
