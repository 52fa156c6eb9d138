package buckets

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// installAzurite returns the azurite-blob to run: $AZURITE_BLOB if set, else
// the one in tests/buckets/node_modules, which it installs with install.sh
// (npm ci of package-lock.json) once per checkout, so that `go test ./...`
// needs nothing run before it. A missing npm fails the test: skipping would
// hide that the Azure tests did not run.
func installAzurite(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AZURITE_BLOB"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if azuriteInstalled(dir) {
		return bin
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
	if azuriteInstalled(dir) {
		return bin
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("Azurite is not installed in %s/node_modules and npm, which installs it, is not on PATH "+
			"(install Node.js 20 and npm): %v", dir, err)
	}
	t.Logf("installing Azurite with npm into %s/node_modules (once per checkout)", dir)
	cmd := exec.Command("bash", filepath.Join(dir, "install.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing Azurite with %s: %v\n%s", cmd, err, out)
	}
	return bin
}

// azuriteInstalled reports whether install.sh completed from the current
// package-lock.json: it copies the lock file in as its last step.
func azuriteInstalled(dir string) bool {
	want, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", ".installed-from-lock.json"))
	return err == nil && bytes.Equal(got, want)
}
