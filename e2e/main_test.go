// Package e2e runs the built connect binary against real files.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
)

// binary is the connect binary built once for the package's tests, and
// s3Server the S3 server they run in a process of its own. Both are built
// from readmeRepo, a copy of the repository's files that only
// TestReadmeCommands runs commands in: Go's build cache keys a package by its
// directory, so the README's first `go run` there finds every package of the
// module compiled instead of compiling them all again.
var binary, s3Server, readmeRepo string

// parallelTests is how many tests run at once unless -parallel says. The
// tests are marked parallel (each has its own ports, directories and
// servers), but on the project's 2-core machine `go test ./...` was fastest
// with one at a time: the unit packages run beside this one, and the machine
// is CPU-bound (.ci/run on a fresh clone, 2026-12-02: 6m06s at 1, 6m24s at
// 2, 6m42s at 4; CPU 7m07s, 8m37s, 9m01s). A bigger machine can give more
// with -parallel. Tests that cannot share the process run first, alone: the
// queue tests set its environment (t.Setenv) for their receivers, and
// TestCustomHTTPMemoryUnderOversizeRequests measures a peak RSS.
const parallelTests = 1

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", fmt.Sprint(parallelTests)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
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
	binary, s3Server, readmeRepo = filepath.Join(dir, "connect"), filepath.Join(dir, "s3server"), filepath.Join(dir, "repo")
	if err := copyRepo(readmeRepo); err != nil {
		fmt.Fprintln(os.Stderr, "copying the repository:", err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/connect", buckets.S3ServerPackage)
	build.Dir = readmeRepo
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building connect and s3server:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
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
