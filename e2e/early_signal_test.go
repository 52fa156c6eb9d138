package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Connect (v4.60.0) installs its signal handler only once the stream runs:
// a SIGTERM before (a rolling update stopping a pod just started, a config
// slow to build) killed the process outright ("signal: terminated"), with
// no graceful stop. These tests hold Connect's start at a step of their
// choosing (heldRead) and send SIGTERM there.

// heldRead is a FIFO that holds Connect's start at the step that reads it,
// until the test writes it: the config itself (-c), read before Connect
// made its logger, or a mapping's file(), read when Connect builds the
// component (heldBuild).
type heldRead struct{ path string }

func newHeldRead(t *testing.T) heldRead {
	t.Helper()
	h := heldRead{filepath.Join(t.TempDir(), "held.fifo")}
	if err := syscall.Mkfifo(h.path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Lets a writer still waiting for Connect (which exited) go.
	t.Cleanup(func() {
		if f, err := os.OpenFile(h.path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
	return h
}

// heldBuild is the flag that adds to a config's input a processor whose
// mapping reads h when Connect builds it: after the input started (a
// braze_currents input takes its checkpoint's lease), before the stream runs.
func (h heldRead) heldBuild() []string {
	return []string{"--set", fmt.Sprintf("input.processors.-.mutation=let started = file(%q)", h.path)}
}

// reached waits until p opened h, whose read then waits for what the test
// writes (release): p is held at that step.
func (h heldRead) reached(t *testing.T, p *connectProc) *os.File {
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(h.path, os.O_WRONLY, 0) // returns once a reader opened it
		if err != nil {
			f = nil
		}
		opened <- f
	}()
	select {
	case f := <-opened:
		if f == nil {
			t.Fatal("opening the FIFO failed")
		}
		return f
	case <-p.done:
		t.Fatalf("connect exited (%v) before it read the FIFO:\n%s", p.err, lastLines(p.logs(), 20))
	case <-time.After(time.Minute):
		t.Fatalf("connect did not read the FIFO within a minute:\n%s", lastLines(p.logs(), 20))
	}
	return nil
}

// release lets the read the test holds end.
func release(t *testing.T, f *os.File) {
	t.Helper()
	if _, err := f.WriteString(`"x"`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A SIGTERM before Connect read its config: the process exits at once with
// status 1, saying nothing was run, not by the signal.
func TestSigtermBeforeConfigIsRead(t *testing.T) {
	parallelWaiting(t)
	h := newHeldRead(t)
	p := startConnect(t, repoRoot, nil, nil, "-c", h.path)
	held := h.reached(t, p)
	defer held.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(time.Minute) // the config's read still waits: the exit does not
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(lastLines(p.logs(), 1), "Exiting with status 1: received SIGTERM before the config was loaded") {
		t.Fatalf("a SIGTERM before the config was read: exit %v, want status 1 and the reason:\n%s", p.err, lastLines(p.logs(), 5))
	}
}

// A SIGTERM while Connect builds the components of a watching run, whose
// input already holds its checkpoint's lease: the run starts, then stops as
// at any SIGTERM, gracefully, exits 0 and releases the lease (another
// process would otherwise wait for it to expire, here an hour).
func TestSigtermWhileBuildingStopsGracefully(t *testing.T) {
	parallelWaiting(t)
	h := newHeldRead(t)
	srv := segmentapi.StartT(t, e2eWriteKey)
	bucket, _ := checkpointTree(t, 97)
	env := append(pipelineEnv("file://"+bucket, srv, filepath.Join(t.TempDir(), "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true"),
		"CURRENTS_WATCH=true", "CURRENTS_CHECKPOINT_LEASE=1h")
	p := startConnect(t, repoRoot, env, nil, append([]string{"-c", shippedConfig}, h.heldBuild()...)...)
	held := h.reached(t, p)
	p.waitLines(1, time.Minute, "Checkpoint kept in", "held by")
	if checkpointOwner(t, bucket) == "" {
		t.Fatal("the input logged its lease, which its checkpoint does not hold")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	release(t, held)
	p.waitExit(time.Minute)
	if p.err != nil || p.count("Received SIGTERM, the service is closing") != 1 {
		t.Fatalf("a SIGTERM while the run was built: exit %v, want 0 after Connect's graceful stop:\n%s", p.err, lastLines(p.logs(), 20))
	}
	if owner := checkpointOwner(t, bucket); owner != "" {
		t.Fatalf("the stopped run left its checkpoint's lease held: %s", owner)
	}
}

// A SIGTERM while Connect builds the components of a dead letter replay:
// exit status 1, the replay stopped by a signal, as at any SIGTERM during it.
func TestSigtermWhileBuildingReplay(t *testing.T) {
	parallelWaiting(t)
	h := newHeldRead(t)
	dir := t.TempDir()
	letters := filepath.Join(dir, "dead-letter.jsonl")
	line := `{"error":"x","event_type":"users.messages.email.Send","source":"currents/x.avro","message":{"type":"track","messageId":"m-1","userId":"u-1","event":"Email Sent","timestamp":"2026-01-01T00:00:00Z"}}` + "\n"
	if err := os.WriteFile(letters, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := segmentapi.StartT(t, keyDefault)
	srv.SlowNext(10000, time.Hour) // the replay cannot end before the signal reaches Connect
	p := startConnect(t, repoRoot, []string{"DEAD_LETTERS=" + letters, "DEAD_LETTER_PATH=" + filepath.Join(dir, "replayed.jsonl"),
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault}, nil,
		append([]string{"-c", "config/dead_letters_to_segment.yaml", "--set", "shutdown_timeout=3s"}, h.heldBuild()...)...)
	held := h.reached(t, p)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	release(t, held)
	p.waitExit(time.Minute)
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(lastLines(p.logs(), 1), "Exiting with status 1: the file input's run was stopped by a signal (Received SIGTERM") {
		t.Fatalf("a replay given SIGTERM while it was built exited with %v:\n%s", p.err, lastLines(p.logs(), 5))
	}
}

// checkpointOwner is the owner the newest checkpoint slot under bucket
// names, or "" (no checkpoint, or a released one).
func checkpointOwner(t *testing.T, bucket string) string {
	t.Helper()
	var newest struct {
		Seq   uint64          `json:"seq"`
		Owner json.RawMessage `json:"owner"`
	}
	found := false
	err := filepath.WalkDir(filepath.Join(bucket, "currents-connect", "checkpoints"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".attrs") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc struct {
			Seq   uint64          `json:"seq"`
			Owner json.RawMessage `json:"owner"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !found || doc.Seq > newest.Seq {
			newest, found = doc, true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(newest.Owner)
}
