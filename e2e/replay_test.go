package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestReplayDeadLetters runs config/currents_to_segment.yaml with a write key
// for one app group only and no default, so the other two app groups' calls
// go to the dead letters (no Segment write key for route), then
// config/dead_letters_to_segment.yaml over that file, and a second one of
// lines that cannot be sent, with keys for them: every dead-lettered call
// reaches Segment once, with its messageId, under its app group's key (the
// experiment split calls, which carry no app group, by the integration of
// their object key), the lines that cannot be sent go to the new dead letter
// file with their reason, and the files read are left as they were.
func TestReplayDeadLetters(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	byGroup := routingTree(t, bucket, 8, 900)
	srv := segmentapi.StartT(t, keyDefault, segmentapi.WithWriteKeys(keyGroupA, keyGroupB))
	letters := filepath.Join(dir, "letters")
	if err := os.Mkdir(letters, 0o755); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(letters, "dead-letter.jsonl")
	env := append(pipelineEnv("file://"+bucket, srv, first, "BRAZE_INCLUDE_ANONYMOUS=true",
		"BRAZE_EVENT_TYPES=users.messages.email.Send,users.canvas.experimentstep.SplitEntry",
		fmt.Sprintf("SEGMENT_WRITE_KEYS=group-a=%s,%s=%s", keyGroupA, fixtures.IntegrationID(0), keyGroupA)),
		"SEGMENT_WRITE_KEY=")
	runToEnd(t, env, "-c", "config/currents_to_segment.yaml")
	checkUnder(t, srv, keyGroupA, byGroup["group-a"])
	dead := deadletter.Read(t, first, false)
	if want := len(byGroup["group-b"]) + len(byGroup["group-c"]); len(dead) != want {
		t.Fatalf("%d dead letters, want group-b's and group-c's %d", len(dead), want)
	}
	for _, d := range dead {
		if !strings.Contains(d.Error, "no Segment write key for route") {
			t.Fatalf("dead letter %s says %q, want no Segment write key", d.ID, d.Error)
		}
	}
	// Lines that cannot be sent, in a second file the glob takes too.
	other := filepath.Join(letters, "dead-letter-2.jsonl")
	bad := "not a dead letter\n" +
		`{"error":"x","event_type":"users.messages.email.Send","source":"currents/x.avro","message":{"time":1735689600,"external_user_id":"customer-0001"}}` + "\n"
	if err := os.WriteFile(other, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}

	srv.Reset()
	replayed := filepath.Join(dir, "dead-letter.replayed.jsonl")
	runToEnd(t, []string{
		"DEAD_LETTERS=" + filepath.Join(letters, "*.jsonl"),
		"DEAD_LETTER_PATH=" + replayed,
		"SEGMENT_ENDPOINT=" + srv.URL(),
		fmt.Sprintf("SEGMENT_WRITE_KEYS=group-b=%s,%s=%s", keyGroupB, fixtures.IntegrationID(1), keyGroupB),
		"SEGMENT_WRITE_KEY=" + keyDefault,
		"CONNECT_HTTP_ADDRESS=127.0.0.1:0",
	}, "-c", "config/dead_letters_to_segment.yaml")
	checkUnder(t, srv, keyGroupA, nil)
	checkUnder(t, srv, keyGroupB, byGroup["group-b"])
	checkUnder(t, srv, keyDefault, byGroup["group-c"])
	again := deadletter.Read(t, replayed, false)
	if len(again) != 2 {
		t.Fatalf("%d lines in the new dead letter file, want the 2 that cannot be sent: %+v", len(again), again)
	}
	if again[0].Message != `"not a dead letter"` { // the pipeline's threads may swap them
		again[0], again[1] = again[1], again[0]
	}
	if again[0].Error != "not a dead letter line: not a JSON object" || again[0].Message != `"not a dead letter"` {
		t.Errorf("a line that is not JSON was kept as %+v", again[0])
	}
	if !strings.Contains(again[1].Error, "users.messages.email.Send event has no id") ||
		again[1].EventType != "users.messages.email.Send" || again[1].Source != "currents/x.avro" ||
		!strings.Contains(again[1].Message, `"external_user_id":"customer-0001"`) {
		t.Errorf("an event that still cannot be mapped was kept as %+v", again[1])
	}
	if after, err := os.ReadFile(first); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the dead letter file read was changed (%v)", err)
	}
}

// TestReplayIntoTheFileReadIsWarnedOf: with DEAD_LETTER_PATH the file
// DEAD_LETTERS reads (the replay's own file replayed with its default, or
// the production DEAD_LETTER_PATH left in the environment), a line that
// failed again would be appended to the file being read; the binary says so
// at start. (Here every line is sent, so nothing is appended.)
func TestReplayIntoTheFileReadIsWarnedOf(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, keyDefault)
	dir := t.TempDir()
	file := filepath.Join(dir, "dead-letter.replayed.jsonl")
	line := `{"error":"x","event_type":"users.messages.email.Send","source":"currents/x.avro","message":{"type":"track","event":"Email Sent","messageId":"00000000-0000-4000-8000-000000009401","userId":"customer-0001","timestamp":"2025-01-02T00:02:48Z","properties":{}}}` + "\n"
	if err := os.WriteFile(file, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runToEnd(t, []string{"DEAD_LETTERS=" + filepath.Join(dir, "*.jsonl"), "DEAD_LETTER_PATH=" + file,
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault, "CONNECT_HTTP_ADDRESS=127.0.0.1:0"},
		"-c", "config/dead_letters_to_segment.yaml")
	if want := "would append the lines that fail again to the file it reads"; !strings.Contains(p.logs(), want) {
		t.Fatalf("the logs lack %q:\n%s", want, lastLines(p.logs(), 10))
	}
	checkUnder(t, srv, keyDefault, []string{"00000000-0000-4000-8000-000000009401"})
}

// TestReplayReadsOnAfterAHugeLine: a dead letter line of 20 MiB (a Custom
// HTTP event under a raised CURRENTS_HTTP_MAX_BODY_SIZE, or one of invalid
// UTF-8 bytes, each written back as a 3-byte \ufffd) does not end the read of
// its file: the call on the line after it reaches Segment, and the huge one,
// too large for Segment, goes to the new dead letter file. With a line
// limit below it, the file input stopped at it and the run ended as if the
// file were done, so the lines after it were neither sent nor dead-lettered.
func TestReplayReadsOnAfterAHugeLine(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, keyDefault)
	dir := t.TempDir()
	file := filepath.Join(dir, "dead-letter.jsonl")
	call := func(id, props string) string {
		return `{"error":"x","event_type":"users.messages.email.Send","source":"currents/x.avro","message":{"type":"track","event":"Email Sent","messageId":"` +
			id + `","userId":"customer-0001","timestamp":"2025-01-02T00:02:48Z","properties":{` + props + `}}}` + "\n"
	}
	const first, huge, after = "00000000-0000-4000-8000-000000009501", "00000000-0000-4000-8000-000000009502", "00000000-0000-4000-8000-000000009503"
	lines := call(first, "") + call(huge, `"body":"`+strings.Repeat("x", 20<<20)+`"`) + call(after, "")
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	replayed := filepath.Join(dir, "dead-letter.replayed.jsonl")
	runToEnd(t, []string{"DEAD_LETTERS=" + file, "DEAD_LETTER_PATH=" + replayed,
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault, "CONNECT_HTTP_ADDRESS=127.0.0.1:0"},
		"-c", "config/dead_letters_to_segment.yaml")
	checkUnder(t, srv, keyDefault, []string{first, after})
	again := deadletter.Read(t, replayed, false)
	if len(again) != 1 || again[0].ID != huge {
		t.Fatalf("the new dead letter file holds %d lines, want the huge call's alone: %.300v", len(again), again)
	}
}

// TestReplayHoldsWhatItCannotDeadLetter: the lines that fail again while
// DEAD_LETTER_PATH cannot be written (here: under a regular file, then
// removed) are held and written once it can be, and the run ends then. The
// file input drops a message nacked after it read its last line (benthos,
// v4.60.0), so the run ended at once with exit status 0 and those lines in
// no file but the one read, which the README says to delete once a run ends
// with nothing new dead-lettered.
func TestReplayHoldsWhatItCannotDeadLetter(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, keyDefault)
	dir := t.TempDir()
	file := filepath.Join(dir, "dead-letter.jsonl")
	if err := os.WriteFile(file, []byte("not a dead letter\nnor this\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "out")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	replayed := filepath.Join(blocker, "dead-letter.replayed.jsonl")
	p := startConnect(t, repoRoot, []string{"DEAD_LETTERS=" + file, "DEAD_LETTER_PATH=" + replayed,
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault, "CONNECT_HTTP_ADDRESS=127.0.0.1:0"},
		nil, "-c", "config/dead_letters_to_segment.yaml")
	p.waitLines(4, time.Minute, "Failed to send message to dead_letter_file", "not a directory")
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	p.wait(time.Minute)
	// The sign the README gives of a run that ended by itself, not stopped.
	if p.count("Pipeline has terminated") != 1 {
		t.Fatalf("the replay's end is not logged as the pipeline's:\n%s", lastLines(p.logs(), 5))
	}
	again := deadletter.Read(t, replayed, false)
	if len(again) != 2 {
		t.Fatalf("%d lines in the new dead letter file, want the 2 read", len(again))
	}
}

// TestReplayThatCouldNotReadALineExitsOne: a line the file input cannot read
// (longer than its scanner's max_buffer_size, here lowered to 4 KiB from the
// config's 1 GiB; or a read error of the disk) ends the read of its file,
// the lines after it neither sent nor dead-lettered; the run exited with
// status 0, as one that read everything, after which the README says to
// delete the file read. It now exits 1, saying why.
func TestReplayThatCouldNotReadALineExitsOne(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, keyDefault)
	dir := t.TempDir()
	file := filepath.Join(dir, "dead-letter.jsonl")
	if err := os.WriteFile(file, []byte("not a dead letter\n"+strings.Repeat("x", 5000)+"\nnor this\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startConnect(t, repoRoot, []string{"DEAD_LETTERS=" + file, "DEAD_LETTER_PATH=" + filepath.Join(dir, "replayed.jsonl"),
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault}, nil,
		"-c", "config/dead_letters_to_segment.yaml", "--set", "input.file.scanner.lines.max_buffer_size=4096")
	p.waitExit(time.Minute)
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(lastLines(p.logs(), 1), "Exiting with status 1: the file input could not read a file to its end (bufio.Scanner: token too long)") {
		t.Fatalf("a replay that skipped lines exited with %v:\n%s", p.err, lastLines(p.logs(), 5))
	}
}
