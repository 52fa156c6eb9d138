//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestDeadLetterFileFullThenFreed runs config/currents_to_segment.yaml with
// no write key for any event, so every call is a dead letter, under a file
// size limit (RLIMIT_FSIZE, as a full disk: the write that crosses it is
// cut short, the next ones fail) that is lifted once writes fail. Every
// dead letter ends up whole, on a line of its own: the line cut short is
// taken back before its retry. Before, benthos' file output left the
// fragment and appended the retried line to it, one line that is not JSON,
// which the replay dead-letters as such instead of sending its call.
func TestDeadLetterFileFullThenFreed(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	byGroup := routingTree(t, bucket, 40, 1300)
	srv := segmentapi.StartT(t, keyDefault)
	path := filepath.Join(dir, "dead-letter.jsonl")
	env := append(pipelineEnv("file://"+bucket, srv, path, "BRAZE_INCLUDE_ANONYMOUS=true",
		"BRAZE_EVENT_TYPES=users.messages.email.Send,users.canvas.experimentstep.SplitEntry",
		"SEGMENT_WRITE_KEYS=no-such-group="+keyGroupA), "SEGMENT_WRITE_KEY=")

	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	// prlimit(1) (util-linux, in every Debian) limits itself, then execs the
	// binary: a limit set on this process while it started the binary would
	// fail any file written meanwhile, the test framework's own log too.
	p := startConnectThrough(t, []string{"prlimit", fmt.Sprintf("--fsize=%d:", 16<<10), "--"}, repoRoot, env, nil,
		"-c", "config/currents_to_segment.yaml")
	p.waitLines(3, time.Minute, "file too large")
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: was.Cur, Max: was.Max}, nil); err != nil {
		t.Fatal(err)
	}
	p.wait(time.Minute)

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !strings.HasPrefix(line, `{"error":`) || strings.Count(line, `{"error":`) != 1 {
			t.Fatalf("line %d of the dead letter file is not one whole dead letter: %.200s … %.200s", i+1, line, line[max(0, len(line)-200):])
		}
	}
	checkEveryEventDeadLettered(t, path, byGroup)
}

// checkEveryEventDeadLettered fails the test unless every sendable event of
// routingTree's byGroup is in the dead letter file at path.
func checkEveryEventDeadLettered(t *testing.T, path string, byGroup map[string][]string) {
	t.Helper()
	got := map[string]bool{}
	for _, d := range deadletter.Read(t, path, false) {
		got[d.ID] = true
	}
	for _, g := range []string{"group-a", "group-b", "group-c"} {
		for _, id := range byGroup[g] {
			if !got[id] {
				t.Fatalf("event %s of %s is not in the dead letter file", id, g)
			}
		}
	}
}

// TestStoppedWhileDeadLettersFailLosesNone runs config/currents_to_segment.yaml,
// watching, with no write key for any event and DEAD_LETTER_PATH under a
// regular file, so that every dead letter write fails; it is stopped (SIGTERM,
// then in a second round SIGKILL) while they are retried. A run after the
// path is made writable dead-letters every event: none was counted done in
// the checkpoint while its dead letter was not written.
func TestStoppedWhileDeadLettersFailLosesNone(t *testing.T) {
	parallelCPU(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Logf("stopped by %v", sig)
		dir := t.TempDir()
		bucket := filepath.Join(dir, "bucket")
		byGroup := routingTree(t, bucket, 40, 1700)
		srv := segmentapi.StartT(t, keyDefault)
		blocker := filepath.Join(dir, "volume")
		if err := os.WriteFile(blocker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(blocker, "dead-letter.jsonl")
		env := append(pipelineEnv("file://"+bucket, srv, path, "BRAZE_INCLUDE_ANONYMOUS=true",
			"BRAZE_EVENT_TYPES=users.messages.email.Send,users.canvas.experimentstep.SplitEntry",
			"SEGMENT_WRITE_KEYS=no-such-group="+keyGroupA), "SEGMENT_WRITE_KEY=")
		p := startConnect(t, repoRoot, append(env, "CURRENTS_WATCH=true"), nil, "-c", "config/currents_to_segment.yaml")
		p.waitLines(6, time.Minute, "Failed to send message to dead_letter_file", "not a directory")
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		p.waitExit(time.Minute)
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
		runToEnd(t, env, "-c", "config/currents_to_segment.yaml")
		checkEveryEventDeadLettered(t, path, byGroup)
	}
}
