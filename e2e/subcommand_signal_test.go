package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The subcommands that run no config keep their behaviour at a signal:
// Connect's own handler where it has one (blobl server), else Go's default
// (killed by it). None says a config was not run.

// SIGINT (Ctrl-C) ends a blobl server as its own handler does: status 0.
func TestSigintEndsBloblServer(t *testing.T) {
	parallelWaiting(t)
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	p := startConnect(t, repoRoot, nil, nil, "blobl", "server", "--no-open", "--host", host, "--port", port)
	p.waitLines(1, time.Minute, "Serving at")
	// It answers once it listens, its handler in (installed just before).
	waitUntil(t, "the blobl server to answer", func() bool {
		code, _ := httpGet(t, "http://"+addr+"/")
		return code != 0 || p.exited()
	})
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitExit(time.Minute)
	if p.err != nil || strings.Contains(p.logs(), "Exiting with status") {
		t.Fatalf("Ctrl-C on blobl server: exit %v, want 0 and no reason:\n%s", p.err, lastLines(p.logs(), 5))
	}
}

// SIGINT while lint reads its config (held: a FIFO) kills it, as Go's
// default action does.
func TestSigintKillsLint(t *testing.T) {
	parallelWaiting(t)
	h := newHeldRead(t)
	p := startConnect(t, repoRoot, nil, nil, "lint", h.path)
	held := h.reached(t, p)
	defer held.Close()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitExit(time.Minute)
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT || strings.Contains(p.logs(), "Exiting with status") {
		t.Fatalf("Ctrl-C on lint: exit %v, want killed by SIGINT, no reason:\n%s", p.err, lastLines(p.logs(), 5))
	}
}
