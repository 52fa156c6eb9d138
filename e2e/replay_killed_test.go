package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestReplayAfterKilledRuns: three runs of the shipped pipeline append to one
// dead letter file (no write key takes their calls), the first two leaving it
// as a SIGKILL does: the first run's last line has no newline (benthos' file
// output, which the configs used before dead_letter_file, wrote a line and its
// newline in two writes: killed between them), and the second's is cut midway
// (killed during a write that crossed a page).
// Then config/dead_letters_to_segment.yaml replays the file: every dead letter
// reaches Segment but the cut one, which goes to the new dead letter file
// with the error that it is no JSON object; none is glued to the next run's first.
func TestReplayAfterKilledRuns(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, keyDefault)
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead-letter.jsonl")
	want, noUser := map[string]string{}, map[string]string{}
	var cutID string
	for run := range 3 {
		bucket := filepath.Join(dir, fmt.Sprintf("bucket-%d", run))
		written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes()[:2],
			FilesPerType: 1, RecordsPerFile: 10, Seed: uint64(9500 + run)})
		if err != nil {
			t.Fatal(err)
		}
		w, n := expectedIDs(written)
		for id, key := range w {
			want[id] = key
		}
		for id, key := range n {
			noUser[id] = key
		}
		p := runToEnd(t, append(pipelineEnv("file://"+bucket, srv, dead, "BRAZE_INCLUDE_ANONYMOUS=true"),
			"SEGMENT_WRITE_KEY=", "SEGMENT_WRITE_KEYS=no-such-app-group="+keyDefault))
		if run == 1 && !strings.Contains(p.logs(), "ended in a line with no newline") {
			t.Fatalf("the run after a kill does not say it ended the cut line:\n%s", lastLines(p.logs(), 10))
		}
		data, err := os.ReadFile(dead)
		if err != nil {
			t.Fatal(err)
		}
		switch run {
		case 0: // killed between a line and its newline
			data = bytes.TrimSuffix(data, []byte("\n"))
		case 1: // killed during a line's write
			last := deadletter.Read(t, dead, false)
			cutID = last[len(last)-1].ID
			start := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
			data = data[:start+(len(data)-start)/2]
		}
		if err := os.WriteFile(dead, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Stats().Accepted != 0 {
		t.Fatalf("the runs without a write key sent %d calls", srv.Stats().Accepted)
	}
	delete(want, cutID)
	// The events without a user were skipped by the runs, never dead-lettered.
	for _, d := range deadletter.Read(t, dead, true) {
		if noUser[d.ID] != "" {
			t.Fatalf("event %s without a user is in the dead letter file: %+v", d.ID, d)
		}
	}

	replayed := filepath.Join(t.TempDir(), "dead-letter.replayed.jsonl")
	runToEnd(t, []string{"DEAD_LETTERS=" + dead, "DEAD_LETTER_PATH=" + replayed, "SEGMENT_ENDPOINT=" + srv.URL(),
		"SEGMENT_WRITE_KEY=" + keyDefault, "CONNECT_HTTP_ADDRESS=127.0.0.1:0"}, "-c", "config/dead_letters_to_segment.yaml")
	checkDelivered(t, srv, want)
	// What fails again: the cut line alone.
	cut := 0
	for _, d := range deadletter.Read(t, replayed, false) {
		switch {
		case strings.HasPrefix(d.Message, `"{\"error\":`) && d.Error == "not a dead letter line: not a JSON object":
			cut++
		default:
			t.Fatalf("the replay dead-lettered %+v", d)
		}
	}
	if cut != 1 {
		t.Fatalf("the replay's dead letters hold %d cut lines, want 1", cut)
	}
}
