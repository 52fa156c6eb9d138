// Package serverproc runs a test server as a process of its own: started,
// waited for until it prints the line saying where it listens, killed when
// the test ends.
package serverproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"
)

// StartServer starts cmd and waits until a stdout line matches ready, whose
// first group (the server's URL) it returns. The process is killed when the
// test ends.
func StartServer(t testing.TB, cmd *exec.Cmd, ready *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	logs := &SyncBuffer{}
	url, err := Start(cmd, ready, timeout, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ReportIfFailed(t, cmd, logs)
		Kill(cmd)
	})
	return url
}

// ReportIfFailed shows a server's output and state when the test failed, so
// that a server that died or misbehaved explains itself.
func ReportIfFailed(t testing.TB, cmd *exec.Cmd, logs *SyncBuffer) {
	if t.Failed() {
		t.Logf("%s (state %v) wrote:\n%s", cmd.Path, cmd.ProcessState, logs.String())
	}
}

// Start is StartServer without the testing.TB, for restartable processes;
// the server's output goes to logs.
func Start(cmd *exec.Cmd, ready *regexp.Regexp, timeout time.Duration, logs *SyncBuffer) (string, error) {
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		close(found)
		io.Copy(logs, stdout) // keep draining so the server never blocks on a full pipe
	}()
	select {
	case url, ok := <-found:
		if ok {
			return url, nil
		}
	case <-time.After(timeout):
	}
	Kill(cmd)
	return "", fmt.Errorf("%s did not print a line matching %q within %v (%v); output:\n%s",
		cmd.Path, ready, timeout, cmd.ProcessState, logs.String())
}

// Kill kills cmd's process, if it is running, and waits for it.
func Kill(cmd *exec.Cmd) {
	if cmd.Process != nil && cmd.ProcessState == nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// SyncBuffer is a buffer that a process's output and a test may use at once.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
