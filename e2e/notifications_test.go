package e2e

// Notification mode: replicas of config/currents_notifications_to_segment.yaml
// on one Pub/Sub subscription (Google's test server, in process), over a
// file:// bucket whose directory is named like the notifications' bucketId.

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const notificationsConfig = "config/currents_notifications_to_segment.yaml"

// noticeRig is a bucket of 50 files × 2,000 events, a subscription and the
// Segment stand-in.
type noticeRig struct {
	t       *testing.T
	ps      *queues.PubSub
	srv     *segmentapi.Server
	events  *notifier
	written []fixtures.Written
	want    map[string]string
	dir     string
	next    int // the next file to publish a notification of
	runs    int
}

func newNoticeRig(t *testing.T) *noticeRig {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "acme-currents") // the bucketId the notifications carry
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes(), FilesPerType: 1, RecordsPerFile: 2000, Seed: 16})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := expectedIDs(written)
	ps := queues.StartPubSub(t)
	ps.CreateTopic(t, "created", "connect", 10*time.Second)
	srv := segmentapi.StartT(t, e2eWriteKey)
	events := newNotifier()
	srv.OnRequest(func(*http.Request, []segmentapi.Call) { events.notify() })
	return &noticeRig{t: t, ps: ps, srv: srv, events: events, written: written, want: want, dir: dir}
}

// start starts one replica.
func (r *noticeRig) start() *connectProc {
	r.runs++
	env := notificationsEnv(r.dir, r.ps, "connect", r.srv, filepath.Join(r.t.TempDir(), fmt.Sprintf("dead-%d.jsonl", r.runs)))
	p := startConnect(r.t, repoRoot, env, r.events, "-c", notificationsConfig)
	p.waitLines(1, 30*time.Second, "notifications from")
	return p
}

// publish publishes GCS notifications of the next n files.
func (r *noticeRig) publish(n int) {
	for ; n > 0 && r.next < len(r.written); n-- {
		r.ps.Publish(r.t, "created", []byte(`{"kind":"storage#object"}`), map[string]string{
			"bucketId": "acme-currents", "objectId": r.written[r.next].Key, "eventType": "OBJECT_FINALIZE"})
		r.next++
	}
}

// waitDelivered waits until at least n distinct events reached Segment.
func (r *noticeRig) waitDelivered(n int, procs ...*connectProc) {
	r.t.Helper()
	waitFor(r.t, r.events, 60*time.Second, fmt.Sprintf("%d events delivered", n), func() (bool, error) {
		for _, p := range procs {
			if p.exited() {
				return false, fmt.Errorf("a replica exited: %v\n%s", p.err, lastLines(p.logs(), 20))
			}
		}
		return r.srv.UniqueMessageIDs() >= n, nil
	})
}

// Three replicas share the subscription; one is killed with SIGKILL in the
// middle and restarted: its notifications come back and every event is
// delivered.
func TestNotificationReplicasSurviveKill(t *testing.T) {
	parallelCPU(t)
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
	// The killed replica's Pub/Sub client held its notifications for a
	// minute (not settable through gocloud's URL): move the server's clock
	// past that rather than wait.
	r.ps.Advance(time.Minute + time.Second)
	r.waitDelivered(len(r.want), procs...)
	elapsed := time.Since(began)
	checkDelivered(t, r.srv, r.want)
	logShares(t, procs)
	t.Logf("%d events of %d files delivered by 3 replicas (one killed and restarted) in %v: %.0f events/s; %d calls accepted, %d duplicates",
		len(r.want), len(r.written), elapsed.Round(time.Millisecond), float64(len(r.want))/elapsed.Seconds(), r.srv.Stats().Accepted, r.srv.Duplicates())
}

// One replica starts alone, two more join mid-run: nothing is lost, and
// each phase's rate is logged.
func TestNotificationScaleOut(t *testing.T) {
	parallelCPU(t)
	r := newNoticeRig(t)
	first := r.start()
	began := time.Now()
	r.publish(20)
	r.waitDelivered(20000, first)
	alone, aloneFor := r.srv.UniqueMessageIDs(), time.Since(began)
	procs := []*connectProc{first, r.start(), r.start()}
	scaled := time.Now()
	r.publish(10)
	r.waitDelivered(alone+10000, procs...)
	r.publish(20)
	r.waitDelivered(len(r.want), procs...)
	threeFor := time.Since(scaled)
	checkDelivered(t, r.srv, r.want)
	logShares(t, procs)
	t.Logf("1 replica: %d events in %v, %.0f events/s; then 3 replicas: %d events in %v, %.0f events/s; %d duplicates",
		alone, aloneFor.Round(time.Millisecond), float64(alone)/aloneFor.Seconds(),
		len(r.want)-alone, threeFor.Round(time.Millisecond), float64(len(r.want)-alone)/threeFor.Seconds(), r.srv.Duplicates())
}

// logShares logs how many objects each replica read.
func logShares(t *testing.T, procs []*connectProc) {
	for i, p := range procs {
		t.Logf("replica %d: %d objects done", i, p.count("Object done"))
	}
}

// dashboardNotificationsScrape runs the notifications pipeline on a Pub/Sub
// subscription through a notification of an object, read and delivered,
// and a message that is none, and returns its /metrics.
func dashboardNotificationsScrape(t *testing.T) scrape {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "acme-currents") // the bucketId the notification carries
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 10, Seed: 32})
	if err != nil {
		t.Fatal(err)
	}
	ps := queues.StartPubSub(t)
	ps.CreateTopic(t, "created", "connect", 10*time.Second)
	srv := segmentapi.StartT(t, e2eWriteKey)
	admin := freeAddr(t)
	env := append(notificationsEnv(dir, ps, "connect", srv, filepath.Join(t.TempDir(), "dead.jsonl")), "CONNECT_HTTP_ADDRESS="+admin)
	p := startConnect(t, repoRoot, env, nil, "-c", notificationsConfig)
	p.waitLines(1, 30*time.Second, "notifications from")
	ps.Publish(t, "created", []byte(`{"kind":"storage#object"}`), map[string]string{
		"bucketId": "acme-currents", "objectId": written[0].Key, "eventType": "OBJECT_FINALIZE"})
	ps.Publish(t, "created", []byte(`not a notification`), nil)
	var s scrape
	waitUntil(t, "the object done and the malformed notification counted in /metrics", func() bool {
		var err error
		s, err = tryScrape(admin)
		return err == nil && s.sum("braze_currents_objects_done", "") == 1 && s.sum("braze_currents_notifications_malformed", "") == 1
	})
	if got, want := s.sum("braze_currents_events_read", ""), float64(len(written[0].Records)); got != want {
		t.Errorf("braze_currents_events_read %v, want the object's %v", got, want)
	}
	return s
}

// notificationsEnv runs config/currents_notifications_to_segment.yaml on
// the bucket in dir (named like the notifications' bucketId), sub of ps,
// and srv.
func notificationsEnv(dir string, ps *queues.PubSub, sub string, srv *segmentapi.Server, deadLetters string) []string {
	return append([]string{
		"CURRENTS_URL=file://" + dir,
		"CURRENTS_NOTIFICATIONS=" + ps.SubscriptionURL(sub),
		"SEGMENT_WRITE_KEY=" + e2eWriteKey,
		"SEGMENT_ENDPOINT=" + srv.URL(),
		"DEAD_LETTER_PATH=" + deadLetters,
		"BRAZE_INCLUDE_ANONYMOUS=true",
	}, ps.Env()...)
}
