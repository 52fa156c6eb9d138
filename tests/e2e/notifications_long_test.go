//go:build long

package e2e

import (
	"testing"
	"time"
)

// Long because a killed replica's notifications come back only when the
// Pub/Sub client's lease on them (about a minute, not settable through the
// gocloud URL) runs out: go test -tags long ./tests/e2e -run NotificationReplicasSurviveKill.

// Three replicas share the subscription; one is killed with SIGKILL in the
// middle and restarted: its notifications come back and every event is
// delivered.
func TestNotificationReplicasSurviveKill(t *testing.T) {
	r := newNoticeRig(t)
	procs := []*connectProc{r.start(), r.start(), r.start()}
	began := time.Now()
	// In waves, so that every replica's stream is open and gets its share.
	r.publish(10)
	r.waitDelivered(5000, procs...)
	r.publish(20)
	r.waitDelivered(30000, procs...)
	r.publish(20)
	victim := procs[0]
	victim.kill9()
	t.Logf("killed a replica with %d events delivered; it had logged %d objects done", r.srv.UniqueMessageIDs(), victim.count("Object done"))
	procs[0] = r.start()
	r.waitDelivered(len(r.want), procs...)
	elapsed := time.Since(began)
	checkDelivered(t, r.srv, r.want)
	logShares(t, procs)
	t.Logf("%d events of %d files delivered by 3 replicas (one killed and restarted) in %v: %.0f events/s; %d calls accepted, %d duplicates",
		len(r.want), len(r.written), elapsed.Round(time.Millisecond), float64(len(r.want))/elapsed.Seconds(), r.srv.Stats().Accepted, r.srv.Duplicates())
}
