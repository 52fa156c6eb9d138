package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestFaultRevokedKeyLosesNothing backfills a bucket through the shipped
// pipeline while Segment refuses the write key (401), as after a revoked or
// expired key: the pipeline holds the events, writes no dead letter and
// records no object as done, reports itself not ready, and once the key
// works again delivers everything. Braze's own connector loses events this
// way after 48 hours.
func TestFaultRevokedKeyLosesNothing(t *testing.T) {
	parallelCPU(t)
	revokedKeyRun(t, 5, 0, quickRetries...)
}

// revokedKeyRun holds the key revoked for at least refusals refused requests
// and at least hold, then restores it; args are added to the pipeline's.
func revokedKeyRun(t *testing.T, refusals int, hold time.Duration, args ...string) {
	r := newFaultRig(t, 2, 20, 76)
	srv, events := r.srv, r.events
	srv.RevokeKey(true)
	admin := freeAddr(t)
	env := append(r.env(), "CONNECT_HTTP_ADDRESS="+admin)
	deadPath := envValue(env, "DEAD_LETTER_PATH")

	p := startConnect(t, repoRoot, env, events, append([]string{"-c", shippedConfig}, args...)...)
	began := time.Now()
	// The first refused request, then refused probes of the key.
	waitFor(t, events, time.Minute+hold, fmt.Sprintf("%d refused requests over %v", refusals, hold), func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("the pipeline exited: %v\n%s", p.err, lastLines(p.logs(), 20))
		}
		return srv.Stats().Faulted[segmentapi.FaultRevoked] >= refusals && time.Since(began) >= hold, nil
	})
	t.Logf("the key was refused %d times over %v", srv.Stats().Faulted[segmentapi.FaultRevoked], time.Since(began).Round(time.Second))
	if n := p.count("Object done"); n != 0 {
		t.Fatalf("%d objects recorded as done while Segment refused the key", n)
	}
	if n := len(deadletter.Read(t, deadPath, true)); n != 0 {
		t.Fatalf("%d dead letters while Segment refused the key", n)
	}
	p.waitLines(1, time.Minute, "refused the write key (HTTP 401)", srv.URL())
	waitUntil(t, "/ready to report the refused key", func() bool {
		code, _ := httpGet(t, "http://"+admin+"/ready")
		return code == http.StatusServiceUnavailable
	})

	srv.RevokeKey(false)
	p.wait(2 * time.Minute)
	if n := p.count("refused the write key"); n != 1 {
		t.Fatalf("%d errors about the refused key, want one (probes log nothing more):\n%s", n, lastLines(p.logs(), 30))
	}
	r.checkEnd(env, deadletter.Read(t, deadPath, false), false)
}
