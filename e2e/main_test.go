// Package e2e runs the built connect binary against real files.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the connect binary built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	if err := readProductFiles(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "currents-connect-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "connect")
	build := exec.Command("go", "build", "-o", binary, "../cmd/connect")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building connect:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// productDirs hold what the tests run: the binary's sources, the mappings
// the configs and the sample data.
var productDirs = []string{"../cmd", "../plugin", "../bloblang", "../config", "../tests/fixtures/sample", "../go.mod", "../go.sum"}

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
