// Package npminstall installs a test server distributed on npm (Azurite,
// the SQS and SNS emulator) into the node_modules of the Go package that
// runs it, once per checkout, so that `go test ./...` needs nothing run
// before it.
package npminstall

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Install makes sure dir/node_modules holds what dir/package-lock.json
// pins, running dir/install.sh (npm ci) when it does not. what names the
// server in errors. A missing npm fails the test: skipping would hide that
// the tests needing the server did not run.
func Install(t testing.TB, dir, what string) {
	t.Helper()
	if installed(dir) {
		return
	}
	// go test runs packages in parallel processes: one installs, the others
	// wait on the lock and then find the install done.
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	if installed(dir) {
		return
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("%s is not installed in %s/node_modules and npm, which installs it, is not on PATH "+
			"(install Node.js 20 and npm): %v", what, dir, err)
	}
	t.Logf("installing %s with npm into %s/node_modules (once per checkout)", what, dir)
	cmd := exec.Command("bash", filepath.Join(dir, "install.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing %s with %s: %v\n%s", what, cmd, err, out)
	}
}

// installed reports whether install.sh completed from the current
// package-lock.json: it copies the lock file in as its last step.
func installed(dir string) bool {
	want, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", ".installed-from-lock.json"))
	return err == nil && bytes.Equal(got, want)
}
