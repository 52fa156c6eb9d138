// Package e2e runs the built connect binary against real files.
package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
)

// binary is the connect binary built once for the package's tests, and
// s3Server the S3 server they run in a process of its own. Both are built
// from readmeRepo, a copy of the repository's files that only
// TestReadmeCommands runs commands in: Go's build cache keys a package by its
// directory, so the README's first `go run` there finds every package of the
// module compiled instead of compiling them all again. They are built with
// `go run -exec cp`, which links as `go run` does and caches the executable
// where the README's `go run ./cmd/connect` finds it (`go build` caches no
// executable, and links with debug information, which `go run` omits).
var binary, s3Server, readmeRepo string

// parallelTests is how many tests that keep a core busy (parallelCPU) run
// at once unless -parallel says. The tests are marked parallel (each has its
// own ports, directories and servers), but on the project's 2-core machine
// `go test ./...` was fastest with one at a time: the unit packages run
// beside this one, and the machine is CPU-bound (.ci/run on a fresh clone,
// 2026-12-02: 6m06s at 1, 6m24s at 2, 6m42s at 4; CPU 7m07s, 8m37s,
// 9m01s). A bigger machine can give more with -parallel. Tests that cannot
// share the process run first, alone: the queue tests set its environment
// (t.Setenv) for their receivers, and
// TestCustomHTTPMemoryUnderOversizeRequests measures a peak RSS.
const parallelTests = 1

// waitingTests is how many tests that mostly wait (parallelWaiting) run
// beside those: for a timeout, a lease, a backoff or an outage that is their
// subject, using 0.2 to 0.5 of a core on average. Run in the CPU-bound
// tests' turn they added about 170 s to the package (docs/testing.md).
const waitingTests = 1

// cpuSlots and waitingSlots hold a token for each test running of its kind.
// The runner itself starts every parallel test at once (TestMain lifts
// -parallel), as a test it started could not give its place to another
// while it waits for a slot.
var cpuSlots, waitingSlots chan struct{}

// parallelCPU marks t parallel and waits for a slot among the tests that
// keep a core busy.
func parallelCPU(t *testing.T) {
	t.Helper()
	t.Parallel()
	takeSlot(t, cpuSlots)
}

// parallelWaiting marks t parallel and waits for a slot among the tests that
// mostly wait, which run beside the others.
func parallelWaiting(t *testing.T) {
	t.Helper()
	t.Parallel()
	takeSlot(t, waitingSlots)
}

// takeSlot holds one of slots until t and its clean-ups end; the wait
// counts in t's elapsed time, so it is logged.
func takeSlot(t *testing.T, slots chan struct{}) {
	t.Helper()
	began := time.Now()
	slots <- struct{}{}
	t.Cleanup(func() { <-slots })
	if waited := time.Since(began); waited >= time.Second {
		t.Logf("waited %v for a slot to run in", waited.Round(time.Millisecond))
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	slots := parallelTests
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			slots = f.Value.(flag.Getter).Get().(int)
		}
	})
	cpuSlots, waitingSlots = make(chan struct{}, max(slots, 1)), make(chan struct{}, waitingTests)
	if err := flag.Set("test.parallel", "1000"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := readProductFiles(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "currents-connect-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, s3Server = filepath.Join(dir, "connect"), filepath.Join(dir, "s3server")
	var release func()
	if readmeRepo, release, err = repoCopyDir(); err != nil {
		fmt.Fprintln(os.Stderr, "making a directory for the repository's copy:", err)
		os.Exit(1)
	}
	if err := copyRepo(readmeRepo); err != nil {
		fmt.Fprintln(os.Stderr, "copying the repository:", err)
		os.Exit(1)
	}
	for pkg, out := range map[string]string{"./cmd/connect": binary, buckets.S3ServerPackage: s3Server} {
		build := exec.Command("go", "run", "-exec", "cp", pkg, out)
		build.Dir = readmeRepo
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	release()
	os.Exit(code)
}

// repoCopyDir returns an empty directory for the repository's copy, and
// the function that removes it once the tests are done. It is the same path
// at every run, so that the build cache (which keys a package by its
// directory, and go run's executables by their packages') holds what
// earlier runs built there: at a new path every package of the module was
// compiled again, and each of the README's `go run`s linked again. A run
// that finds the path in use by another, whose lock is held, takes a new
// directory.
func repoCopyDir() (string, func(), error) {
	shared := filepath.Join(os.TempDir(), "currents-connect-e2e-repo")
	lock, err := os.OpenFile(shared+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err == nil {
		if err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
		}
	}
	if err != nil { // in use, or no lock to be had: a directory of our own
		dir, err := os.MkdirTemp("", "currents-connect-e2e-repo")
		return dir, func() { _ = os.RemoveAll(dir) }, err
	}
	release := func() {
		_ = os.RemoveAll(shared)
		lock.Close() // releases the lock
	}
	if err := os.RemoveAll(shared); err != nil { // left by a run that was killed
		release()
		return "", nil, err
	}
	return shared, release, nil
}

// productDirs hold what the tests run: the binaries' sources, the mappings
// the configs and the sample data.
var productDirs = []string{"../cmd", "../plugin", "../bloblang", "../config", "../tests/fixtures/sample",
	"../tests/buckets/cmd", "../go.mod", "../go.sum"}

// readProductFiles reads every file the binary and its configs are made of.
// go test caches a package's result unless a file the test process read has
// changed; the binary is built and run in subprocesses, which it does not
// see, so without this a change to a plugin or a mapping could reuse a
// cached pass.
func readProductFiles() error {
	for _, root := range productDirs {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			return fmt.Errorf("reading the product files: %w", err)
		}
	}
	return nil
}

// TestEveryParallelTestTakesASlot: TestMain lifts -parallel, so a test
// marked parallel with t.Parallel alone would run beside every other,
// unbounded; each must take its slot (parallelCPU or parallelWaiting).
func TestEveryParallelTestTakesASlot(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if name == "main_test.go" {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(src, []byte("t.Parallel()")); n > 0 {
			t.Errorf("%s calls t.Parallel() %d times: call parallelCPU(t) or parallelWaiting(t)", name, n)
		}
	}
}
