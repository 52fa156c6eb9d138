package e2e

import (
	"context"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/queues"
)

// notificationsThroughOutage runs config/currents_notifications_to_segment.yaml
// over the rig's bucket, its notifications read from the queue at
// notifications (queueEnv: what reaching it takes), while Segment answers 503
// for 13 s, longer than the queue keeps a message it delivered (a visibility
// timeout, a lock). cameBack describes a notification delivered again while
// held ("" while none was), checked throughout the outage. Then every event
// arrives, none twice (an object read again sends its events again),
// emptied says the queue was left empty, and the events without a user are
// skipped, neither sent nor in the dead letter file.
func (r *faultRig) notificationsThroughOutage(notifications string, queueEnv map[string]string, cameBack func() string, emptied func() bool) {
	t := r.t
	t.Helper()
	r.srv.Outage503(true)
	env := append(r.env(), "CURRENTS_NOTIFICATIONS="+notifications)
	for k, v := range queueEnv {
		env = append(env, k+"="+v)
	}
	p := startConnect(t, repoRoot, env, r.events, append(append([]string{"run", "--log.level", "debug"}, quickRetries...), notificationsConfig)...)
	p.waitLines(1, 30*time.Second, "Segment request failed", "503 Service Unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outage := time.Now()
	queues.Eventually(t, ctx, "13 s of outage", func() bool {
		if m := cameBack(); m != "" {
			t.Fatalf("a notification came back while held (%s) after %v of outage", m, time.Since(outage))
		}
		return time.Since(outage) > 13*time.Second
	})
	if n := r.srv.UniqueMessageIDs(); n != 0 {
		t.Fatalf("%d calls accepted during the outage", n)
	}
	r.srv.Outage503(false)
	waitFor(t, r.events, time.Minute, "every event delivered", func() (bool, error) {
		return r.srv.UniqueMessageIDs() >= len(r.want), nil
	})
	checkDelivered(t, r.srv, r.want)
	if d := r.srv.Duplicates(); d != 0 {
		t.Fatalf("%d duplicates: objects were read again", d)
	}
	queues.Eventually(t, ctx, "the queue left empty", emptied)
	p.sigterm()
	p.wait(30 * time.Second)
	checkDeadLetters(t, r.srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), r.want, r.noUser, true)
	t.Logf("%d objects, %d events delivered after %v of outage, no duplicates", len(r.written), len(r.want), time.Since(outage).Round(time.Second))
}
