package buckets

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/currents-connect/currents-connect/tests/npminstall"
)

// installAzurite returns the azurite-blob to run: $AZURITE_BLOB if set, else
// the one in tests/buckets/node_modules, which it installs with install.sh
// (npm ci of package-lock.json) once per checkout.
func installAzurite(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AZURITE_BLOB"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	npminstall.Install(t, dir, "Azurite")
	return filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
}
