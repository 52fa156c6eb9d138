//go:build long

package e2e

import (
	"testing"
	"time"
)

// TestFaultRevokedKeyForMinutes holds the write key revoked for three
// minutes of a backfill (probes back off to 30 s apart): nothing is lost or
// dead-lettered, and everything goes out once the key works:
// go test -tags long ./e2e -run RevokedKeyForMinutes
func TestFaultRevokedKeyForMinutes(t *testing.T) {
	revokedKeyRun(t, 5, 3*time.Minute)
}
