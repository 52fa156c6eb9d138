package e2e

// Running the built binary: startConnect for a process the test watches,
// runToEnd and runConnect for a run to its end.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifier wakes waiters whenever something observable happens (a log line,
// a request at the stand-in).
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// connectProc is the binary running the shipped pipeline, its output
// collected line by line.
type connectProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	events *notifier
	done   chan struct{} // closed once the process exited and its output was read
	err    error         // exit status, once done

	mu    sync.Mutex
	lines []string
}

// defaultEnv comes before a test's own environment (the last value of a
// name wins): the shipped configs' HTTP server on a port of its own, as the
// binary stops a run whose server cannot listen (another test's, or another
// process's, on the default 4195).
var defaultEnv = []string{"CONNECT_HTTP_ADDRESS=127.0.0.1:0"}

// startConnect starts the binary in dir (repoRoot: the shipped configs'
// Bloblang imports resolve from there) with env and args (default: -c the
// shipped config). events, when not nil, is notified at every log line and
// when the process ends. The process is killed when the test ends.
func startConnect(t *testing.T, dir string, env []string, events *notifier, args ...string) *connectProc {
	t.Helper()
	return startConnectThrough(t, nil, dir, env, events, args...)
}

// startConnectThrough is startConnect with the binary run by a command that
// execs it (prefix, then the binary and args), so that the process is the
// binary's: e.g. prlimit(1), for a limit of the binary's alone.
func startConnectThrough(t *testing.T, prefix []string, dir string, env []string, events *notifier, args ...string) *connectProc {
	t.Helper()
	if len(args) == 0 {
		args = []string{"-c", shippedConfig}
	}
	if events == nil {
		events = newNotifier()
	}
	argv := append(append(append([]string{}, prefix...), binary), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), defaultEnv...), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &connectProc{t: t, cmd: cmd, events: events, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			events.notify()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.done)
		events.notify()
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// count is how many log lines so far contain every one of subs.
func (p *connectProc) count(subs ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if containsAll(l, subs) {
			n++
		}
	}
	return n
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// logs returns the output so far.
func (p *connectProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *connectProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLines waits until n log lines contain every one of subs; it fails
// the test if the process ends first or the deadline passes.
func (p *connectProc) waitLines(n int, timeout time.Duration, subs ...string) {
	p.t.Helper()
	waitFor(p.t, p.events, timeout, fmt.Sprintf("%d log lines with %q", n, subs), func() (bool, error) {
		if p.count(subs...) >= n {
			return true, nil
		}
		if p.exited() {
			return false, fmt.Errorf("the pipeline exited (%v):\n%s", p.err, lastLines(p.logs(), 30))
		}
		return false, nil
	})
}

// sigterm sends the process SIGTERM once Connect logged "Launching a …
// instance": the stop under test is a running stream's. (One before is
// held until the stream runs: early_signal_test.go.)
func (p *connectProc) sigterm() {
	p.t.Helper()
	p.waitLines(1, time.Minute, "Launching a ")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *connectProc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitExit waits for the process to end by itself within timeout: a hung
// pipeline fails the test instead of the whole suite.
func (p *connectProc) waitExit(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("connect %v did not finish within %v:\n%s", p.cmd.Args[1:], timeout, lastLines(p.logs(), 40))
	}
}

// wait is waitExit that also fails the test unless the process exited
// cleanly.
func (p *connectProc) wait(timeout time.Duration) {
	p.t.Helper()
	p.waitExit(timeout)
	if p.err != nil {
		p.t.Fatalf("the pipeline failed: %v\n%s", p.err, lastLines(p.logs(), 40))
	}
}

// waitFor waits until cond holds, re-checking whenever events fires, for at
// most timeout; cond's error fails the test at once.
func waitFor(t *testing.T, events *notifier, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := events.changed() // before checking, so no change is missed
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// runToEnd runs the pipeline from repoRoot once to its end, which must be
// clean, and returns the process.
func runToEnd(t *testing.T, env []string, args ...string) *connectProc {
	t.Helper()
	p := startConnect(t, repoRoot, env, nil, args...)
	p.wait(time.Minute)
	return p
}

// runConnect runs the binary in dir to its end and returns its output and
// exit error, for the commands that may fail.
func runConnect(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	p := startConnect(t, dir, env, nil, args...)
	p.waitExit(2 * time.Minute)
	return p.logs(), p.err
}

// runSplit runs the binary in dir to its end and returns its stdout and
// stderr apart, for the commands whose stdout is data (the demo's).
func runSplit(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), defaultEnv...), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
