package e2e

// Fault tests: the real binary runs the shipped pipeline
// (config/currents_to_segment.yaml) from a bucket served by a separate S3
// server process into the Segment stand-in, through crashes, outages and bad
// data. Each scenario ends by checking that nothing was lost (every event id
// with a user reached Segment, each counted once through messageId dedup,
// nothing else did) and that the checkpoint is consistent (one more run reads
// nothing).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
	"github.com/linkedin/goavro/v2"
)

// TestFaultKill9 kills the pipeline with SIGKILL at several moments of a
// backfill (calls sent but no object done yet, then after a varying number of
// finished objects), then lets a clean run finish.
func TestFaultKill9(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 6, 10, 71)
	srv, events := r.srv, r.events
	// A dead letter file per run: a killed run may leave a cut last line.
	deadDir := t.TempDir()
	var dead []deadletter.Letter
	run := 0
	runEnv := func() []string {
		run++
		return bucketEnv(r.bucket, srv, filepath.Join(deadDir, fmt.Sprintf("dead-%d.jsonl", run)))
	}
	killed := func() {
		dead = append(dead, deadletter.Read(t, filepath.Join(deadDir, fmt.Sprintf("dead-%d.jsonl", run)), true)...)
	}

	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("E2E_FAULT_SEED"), 10, 64); err == nil {
		seed = s // to replay a run's kill points
	}
	rng := rand.New(rand.NewPCG(seed, 71))
	t.Logf("%d objects, %d events to send; kill points from seed %d (E2E_FAULT_SEED)", len(r.written), len(r.want), seed)

	// In flight: Segment took calls, no object is recorded as done yet.
	p := startConnect(t, repoRoot, runEnv(), events)
	waitFor(t, events, 30*time.Second, "calls accepted by Segment", func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("the pipeline exited: %v\n%s", p.err, lastLines(p.logs(), 20))
		}
		return srv.Stats().Accepted > 0, nil
	})
	p.kill9()
	killed()
	t.Logf("killed with %d calls accepted, %d objects done", srv.Stats().Accepted, p.count("Object done"))
	// Then after n finished objects, at once or once the next request
	// reached Segment (by then the checkpoint has had time to be written).
	// Three runs of at most n ≤ 60 objects (and those done in the same
	// moment) cannot finish the 300 before their kill.
	doneBefore := map[string]bool{} // objects logged done by an earlier run
	for i := range 3 {
		n := 1 + rng.IntN(60)
		p := startConnect(t, repoRoot, runEnv(), events)
		p.waitLines(n, 30*time.Second, "Object done")
		when := "at once"
		if i%2 == 0 {
			when = "at the next request"
			requests := srv.Stats().Requests
			waitFor(t, events, 30*time.Second, "the next request at Segment", func() (bool, error) {
				if p.exited() {
					return false, fmt.Errorf("the pipeline exited: %v\n%s", p.err, lastLines(p.logs(), 20))
				}
				return srv.Stats().Requests > requests, nil
			})
		}
		p.kill9()
		killed()
		redone := 0
		for _, key := range doneKeys(p.logs()) {
			if doneBefore[key] {
				redone++
			}
			doneBefore[key] = true
		}
		t.Logf("killed %s after %d objects done: %d logged done (%d of them already done by an earlier run), %d unique ids accepted",
			when, n, p.count("Object done"), redone, srv.UniqueMessageIDs())
	}
	env := runEnv()
	final := runToEnd(t, env)
	t.Logf("the clean run finished %d objects; %d calls accepted in all, %d duplicates", final.count("Object done"),
		srv.Stats().Accepted, srv.Duplicates())
	dead = append(dead, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false)...)
	r.checkEnd(env, dead, false)
}

// TestFaultSegmentOutage runs the pipeline while Segment refuses connections,
// then answers 503 to everything, then recovers; each phase lasts until the
// pipeline has logged retries of its kind.
func TestFaultSegmentOutage(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 3, 20, 72)
	srv, env := r.srv, r.env()
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	// Retries are logged at debug level.
	p := startConnect(t, repoRoot, env, r.events, append(append([]string{"run", "--log.level", "debug"}, quickRetries...), shippedConfig)...)
	const retried = "Segment request failed"
	p.waitLines(3, 30*time.Second, retried, "connection refused")
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	srv.Outage503(true)
	p.waitLines(3, 30*time.Second, retried, "503 Service Unavailable")
	if n, done := srv.UniqueMessageIDs(), p.count("Object done"); n != 0 || done != 0 {
		t.Fatalf("during the outage %d calls were accepted and %d objects done", n, done)
	}
	t.Logf("outage: %d retries on refused connections, %d on 503 (%d requests answered 503)",
		p.count(retried, "connection refused"), p.count(retried, "503 Service Unavailable"), srv.Stats().Faulted[segmentapi.FaultOutage503])
	srv.Outage503(false)
	p.wait(time.Minute)
	if n := p.count("Object done"); n != len(r.written) {
		t.Fatalf("%d objects done, want %d", n, len(r.written))
	}
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// TestFaultRateLimitStorm answers 429 with Retry-After to the first 20
// requests: everything must be delivered, and no request answered 429 may be
// retried before its Retry-After has passed.
func TestFaultRateLimitStorm(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 3, 20, 73)
	srv := r.srv
	const storm, retryAfter = 20, time.Second
	srv.RateLimitNext(storm, retryAfter)
	proxy := startRecordingProxy(t, srv.URL(), nil)
	env := append(r.env(), "SEGMENT_ENDPOINT="+proxy.url)
	runToEnd(t, env)
	if n := srv.Stats().Faulted[segmentapi.FaultRateLimit]; n != storm {
		t.Fatalf("%d requests answered 429, want %d", n, storm)
	}

	// Each request body is one attempt of one batch; a retry sends the same calls.
	exchanges := proxy.log()
	byBody := map[[32]byte][]proxyExchange{}
	for _, ex := range exchanges {
		byBody[ex.body] = append(byBody[ex.body], ex)
	}
	limited, minGap := 0, time.Hour
	for _, attempts := range byBody {
		for i, ex := range attempts {
			if ex.status != http.StatusTooManyRequests {
				continue
			}
			limited++
			if ex.retryAfter != strconv.Itoa(int(retryAfter.Seconds())) {
				t.Fatalf("the stand-in sent Retry-After %q", ex.retryAfter)
			}
			if i == len(attempts)-1 {
				t.Fatalf("a request answered 429 was never retried")
			}
			gap := attempts[i+1].arrived.Sub(ex.answered)
			if gap < retryAfter {
				t.Fatalf("a request answered 429 with Retry-After %v was retried after %v", retryAfter, gap)
			}
			minGap = min(minGap, gap)
		}
		if last := attempts[len(attempts)-1]; last.status != http.StatusOK {
			t.Fatalf("a batch's last attempt was answered %d", last.status)
		}
	}
	if limited != storm {
		t.Fatalf("the proxy saw %d answers 429, the stand-in sent %d", limited, storm)
	}
	t.Logf("%d requests for %d batches; %d answered 429, retried at the earliest %v after the answer",
		len(exchanges), len(byBody), limited, minGap.Round(time.Millisecond))
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// TestFaultPermanentRejections lowers the stand-in's per-call limit below
// the size of the largest calls: Segment rejects those with 400, they land
// in the dead letter file with the reason, and the rest flow.
func TestFaultPermanentRejections(t *testing.T) {
	parallelCPU(t)
	// Calls of these fixtures weigh 250 to 1,300 bytes; about one in ten is over 1,000.
	const limit = 1000
	r := newFaultRig(t, 3, 20, 74, segmentapi.WithMaxCallBytes(limit))
	srv, env := r.srv, r.env()
	p := runToEnd(t, env)
	if n := p.count("Object done"); n != len(r.written) {
		t.Fatalf("%d objects done, want %d", n, len(r.written))
	}

	// The dead letter file and the accepted calls split the events between them.
	rejected := checkDeadLetters(t, srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), r.want, r.noUser, true,
		"permanent", "400", fmt.Sprintf("over the %d byte limit", limit))
	sent := map[string]string{}
	for id, key := range r.want {
		if rejected[id] == "" {
			sent[id] = key
		}
	}
	if len(rejected) == 0 || len(sent) == 0 {
		t.Fatalf("%d calls rejected, %d accepted: the limit does not split the calls", len(rejected), len(sent))
	}
	st := srv.Stats()
	t.Logf("%d calls rejected and dead-lettered with their reason, %d accepted; %d requests, %d answered 400",
		len(rejected), len(sent), st.Requests, st.Rejected400)
	checkDelivered(t, srv, sent)
	checkNothingNew(t, env, srv)
}

// TestFaultBadObjects mixes an object that is not Avro, a good file cut in
// half and a zero-byte object into the bucket: every good event is
// delivered, with the cut file's events before the damage, the bad objects
// are reported by key, and the run ends cleanly.
func TestFaultBadObjects(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 2, 20, 75)

	badSpec := func(et string, offset int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: et, Records: 40, BlockRecords: 5, Seed: uint64(7500 + offset),
			IntegrationID: r.written[0].Spec.IntegrationID, Offset: offset}
	}
	// The cut file: its events in the Avro blocks wholly before the cut must come out.
	cutSpec := badSpec("users.messages.email.Open", 900000)
	var whole bytes.Buffer
	records, err := fixtures.WriteFile(&whole, cutSpec)
	if err != nil {
		t.Fatal(err)
	}
	cut := whole.Bytes()[:whole.Len()/2]
	intact := intactRecords(t, cut)
	if intact == 0 || intact == len(records) {
		t.Fatalf("cutting the file in half leaves %d of %d records intact", intact, len(records))
	}
	bad := map[string][]byte{
		fixtures.Key(cutSpec): cut,
		fixtures.Key(badSpec("users.messages.sms.Send", 900100)):     []byte("PK\x03\x04 this is a zip file, not Avro"),
		fixtures.Key(badSpec("users.canvas.Entry", 900200)):          nil,
		fixtures.Key(badSpec("users.messages.webhook.Send", 900300)): whole.Bytes()[:3], // "Obj", no version byte
	}
	for key, data := range bad {
		buckets.Upload(t, r.bucket, key, data)
	}
	for _, rec := range records[:intact] {
		if sendable(rec) {
			r.want[rec["id"].(string)] = fixtures.Key(cutSpec)
		} else {
			r.noUser[rec["id"].(string)] = fixtures.Key(cutSpec)
		}
	}

	env := r.env()
	p := runToEnd(t, env)
	for key, data := range bad {
		report := []string{"Skipping corrupt object", key}
		if len(data) == 0 {
			report = []string{"Skipping empty object", key}
		}
		if p.count(report...) != 1 {
			t.Fatalf("no error naming %s:\n%s", key, lastLines(p.logs(), 30))
		}
	}
	if n := p.count("Object done") + p.count("Object corrupt"); n != len(r.written)+len(bad) {
		t.Fatalf("%d objects finished, want %d", n, len(r.written)+len(bad))
	}
	t.Logf("%d good objects and %d bad ones; the cut file gave its first %d of %d events", len(r.written), len(bad),
		intact, len(records))
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// intactRecords is how many records of an Avro file cut short are in its
// complete blocks.
func intactRecords(t *testing.T, data []byte) int {
	t.Helper()
	r, err := goavro.NewOCFReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Scan() {
		if _, err := r.Read(); err != nil {
			break
		}
		n++
	}
	return n
}

// TestFaultBucketRestart kills the S3 server while the pipeline runs and
// starts it again on the same address, twice: when the first objects are
// done, and again a little later.
func TestFaultBucketRestart(t *testing.T) {
	parallelWaiting(t)
	r := newFaultRig(t, 6, 10, 76)
	// One attempt per S3 request: the SDK's own retries of a refused
	// connection (3 attempts, seconds apart) only delay the failures the
	// pipeline must handle, which the test waits for.
	env := append(r.env(), "AWS_MAX_ATTEMPTS=1")

	p := startConnect(t, repoRoot, env, r.events)
	// What the input logs when the bucket is unreachable.
	bucketErrors := [][]string{{"Reading object", "failed"}, {"Saving the checkpoint", "failed"}, {"Listing", "failed"},
		{"Could not read object"}}
	failures := func() int {
		n := 0
		for _, e := range bucketErrors {
			n += p.count(e...)
		}
		return n
	}
	for round, after := range []int{1, 60} {
		p.waitLines(after, 30*time.Second, "Object done")
		r.stopS3()
		seen := failures()
		// Restart once the pipeline has run into the dead server, or once it
		// has finished every object (then only the final checkpoint write is
		// left, and it must succeed after the restart).
		waitFor(t, r.events, 30*time.Second, "the pipeline to hit the stopped bucket", func() (bool, error) {
			if p.exited() {
				return false, fmt.Errorf("the pipeline ended while the bucket was down: %v\n%s", p.err, lastLines(p.logs(), 30))
			}
			return failures() > seen || p.count("Object done") == len(r.written), nil
		})
		r.restartS3()
		t.Logf("round %d: bucket stopped after %d objects done, restarted after %d failures logged", round+1, after, failures()-seen)
	}
	p.wait(time.Minute)
	t.Logf("bucket failures logged:\n%s", grepLines(p.logs(), "Reading object", "Saving the checkpoint", "Listing", "Could not read object"))
	if n := p.count("Object done"); n != len(r.written) {
		t.Fatalf("%d objects done, want %d", n, len(r.written))
	}
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}
