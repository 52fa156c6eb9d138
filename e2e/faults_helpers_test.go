package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// shippedConfig is the production pipeline the fault tests run.
const shippedConfig = "config/currents_to_segment.yaml"

// faultTree writes a bucket tree of the 50 forwarded types under a fresh
// directory and returns it with the files written.
func faultTree(t *testing.T, filesPerType, recordsPerFile int, seed uint64) (string, []fixtures.Written) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes(),
		FilesPerType: filesPerType, RecordsPerFile: recordsPerFile, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return dir, written
}

// sendable reports whether the shipped pipeline (with anonymous users
// included) sends rec: it has a user_id or an external_user_id.
func sendable(rec map[string]any) bool {
	return rec["user_id"] != nil || rec["external_user_id"] != nil
}

// expectedIDs maps the id of every event in written to its key: want holds
// those the pipeline sends (they have a user), noUser the others, which the
// mapping skips (Segment takes no call without an id).
func expectedIDs(written []fixtures.Written) (want, noUser map[string]string) {
	want, noUser = map[string]string{}, map[string]string{}
	for _, w := range written {
		for _, r := range w.Records {
			if sendable(r) {
				want[r["id"].(string)] = w.Key
			} else {
				noUser[r["id"].(string)] = w.Key
			}
		}
	}
	return want, noUser
}

// faultRig is what a fault scenario starts from: a tree of the 50 forwarded
// types in the S3 server process, the ids of its events that the pipeline
// must send (want) and those it must skip for want of a user (noUser), each
// with its object's key, and the Segment stand-in, whose
// requests notify events.
type faultRig struct {
	t                 *testing.T
	written           []fixtures.Written
	want, noUser      map[string]string
	bucket            *buckets.Bucket
	stopS3, restartS3 func() // kill the S3 server; start it again on its address
	srv               *segmentapi.Server
	events            *notifier
}

// newFaultRig writes the tree (faultTree's arguments), uploads it to a new
// S3 server process and starts the stand-in with opts.
func newFaultRig(t *testing.T, filesPerType, recordsPerFile int, seed uint64, opts ...segmentapi.Option) *faultRig {
	t.Helper()
	b, stop, restart := buckets.StartS3Process(t, s3Server, "")
	r := newRigOn(t, b, filesPerType, recordsPerFile, seed, opts...)
	r.stopS3, r.restartS3 = stop, restart
	return r
}

// newRigOn is newFaultRig with the tree in bucket b (no S3 process).
func newRigOn(t *testing.T, b *buckets.Bucket, filesPerType, recordsPerFile int, seed uint64, opts ...segmentapi.Option) *faultRig {
	t.Helper()
	tree, written := faultTree(t, filesPerType, recordsPerFile, seed)
	r := &faultRig{t: t, written: written, bucket: b, srv: segmentapi.StartT(t, e2eWriteKey, opts...), events: newNotifier()}
	r.want, r.noUser = expectedIDs(written)
	buckets.UploadDir(t, b, tree)
	r.srv.OnRequest(func(*http.Request, []segmentapi.Call) { r.events.notify() })
	return r
}

// env is bucketEnv for the rig's bucket and stand-in, with the dead letters
// in a new file (envValue(env, "DEAD_LETTER_PATH")).
func (r *faultRig) env() []string {
	return bucketEnv(r.bucket, r.srv, filepath.Join(r.t.TempDir(), "dead.jsonl"))
}

// checkEnd ends a scenario as each does: dead are the dead letters expected
// (checkDeadLetters: once, no event Segment rejected), every wanted event
// reached Segment (checkDelivered), and one more run with env finds nothing
// new (checkNothingNew).
func (r *faultRig) checkEnd(env []string, dead []deadletter.Letter, once bool) {
	r.t.Helper()
	checkDeadLetters(r.t, r.srv, dead, r.want, r.noUser, once)
	checkDelivered(r.t, r.srv, r.want)
	checkNothingNew(r.t, env, r.srv)
}

// quickRetries are the arguments that make the shipped pipeline's Segment
// output retry (and probe a refused key) within 50 to 500 ms instead of 0.5
// to 30 s, for the tests whose subject is that it retries, not how long it
// waits.
var quickRetries = []string{"--set", "output.fallback.0.reject_errored.segment.backoff.initial_interval=50ms",
	"--set", "output.fallback.0.reject_errored.segment.backoff.max_interval=500ms"}

// bucketEnv is pipelineEnv reading b, with its credentials, every event
// with a user included.
func bucketEnv(b *buckets.Bucket, srv *segmentapi.Server, deadLetter string) []string {
	return append(pipelineEnv(b.URL, srv, deadLetter, "BRAZE_INCLUDE_ANONYMOUS=true"), b.EnvList()...)
}

// checkDelivered checks that every wanted id was accepted by the stand-in
// at least once and that, counting each messageId once, it holds exactly
// those.
func checkDelivered(t *testing.T, srv *segmentapi.Server, want map[string]string) {
	t.Helper()
	for id, key := range want {
		if srv.Count(id) == 0 {
			t.Fatalf("event %s of %s never reached Segment (%d of %d ids did)", id, key, srv.UniqueMessageIDs(), len(want))
		}
	}
	if got := srv.UniqueMessageIDs(); got != len(want) {
		for _, c := range srv.Accepted() {
			if id, _ := c["messageId"].(string); want[id] == "" {
				t.Fatalf("the stand-in holds %d unique ids, %d expected; unexpected call %v", got, len(want), c)
			}
		}
		t.Fatalf("the stand-in holds %d unique ids, %d expected", got, len(want))
	}
}

// checkDeadLetters checks the dead letters of a scenario: no event without a
// user is there, nor reached Segment (the mapping skips them: no error line,
// no dead letter), and an event with a user only if Segment did not accept it, with every one of rejectReason in its reason
// (none is expected when rejectReason is empty). once: each event is there at
// most once (no run was killed). It returns the events Segment rejected.
func checkDeadLetters(t *testing.T, srv *segmentapi.Server, dead []deadletter.Letter, want, noUser map[string]string,
	once bool, rejectReason ...string) map[string]string {
	t.Helper()
	rejected := map[string]string{}
	seen := map[string]int{}
	var delivered []deadletter.Letter // dead letters of calls Segment accepted
	for _, d := range dead {
		if seen[d.ID]++; once && seen[d.ID] > 1 {
			t.Fatalf("event %s is in the dead letter file %d times", d.ID, seen[d.ID])
		}
		if key := noUser[d.ID]; key != "" {
			t.Fatalf("event %s of %s without a user went to the dead letter file, not skipped: %+v", d.ID, key, d)
		}
		key := want[d.ID]
		switch {
		case key == "":
			t.Fatalf("dead letter of an event not in the bucket: %+v", d)
		case srv.Count(d.ID) > 0:
			delivered = append(delivered, d)
			continue
		case len(rejectReason) == 0:
			t.Fatalf("event %s of %s went to the dead letter file, not to Segment: %s", d.ID, key, d.Error)
		}
		for _, s := range rejectReason {
			if !strings.Contains(d.Error, s) {
				t.Fatalf("dead letter of %s lacks %q in its reason %q", d.ID, s, d.Error)
			}
		}
		if d.EventType == "" || d.Source != key {
			t.Fatalf("dead letter of %s does not name its event type and object %s: %+v", d.ID, key, d)
		}
		rejected[d.ID] = d.Error
	}
	for id, key := range noUser {
		if srv.Count(id) > 0 {
			t.Fatalf("event %s of %s without a user reached Segment", id, key)
		}
	}
	if len(delivered) > 0 {
		reasons, sources := map[string]bool{}, map[string]bool{}
		for _, d := range delivered {
			reasons[d.Error], sources[d.Source] = true, true
		}
		d := delivered[0]
		t.Errorf("%d of %d dead letters are calls Segment accepted (they come from %d objects and share %d reasons); "+
			"e.g. %s of %s, accepted %d time(s), dead-lettered with %q", len(delivered), len(dead), len(sources),
			len(reasons), d.ID, d.Source, srv.Count(d.ID), d.Error)
	}
	return rejected
}

// checkNothingNew runs the pipeline again over the same bucket: a consistent
// checkpoint leaves nothing to read, so nothing is sent and no object is
// finished.
func checkNothingNew(t *testing.T, env []string, srv *segmentapi.Server) {
	t.Helper()
	before, unique := srv.Stats().Accepted, srv.UniqueMessageIDs()
	p := runToEnd(t, env)
	if n := p.count("Object "); n != 0 {
		t.Fatalf("the run after the last one finished %d objects again:\n%s", n, lastLines(p.logs(), 30))
	}
	if after := srv.Stats().Accepted; after != before || srv.UniqueMessageIDs() != unique {
		t.Fatalf("the run after the last one sent %d calls (%d new ids)", after-before, srv.UniqueMessageIDs()-unique)
	}
}

// proxyExchange is one request seen by recordingProxy.
type proxyExchange struct {
	body       [32]byte // SHA-256 of the request body but its sentAt: a retry sends the same calls, stamped anew
	arrived    time.Time
	answered   time.Time
	status     int
	retryAfter string
}

// recordingProxy forwards requests to the stand-in and records each exchange,
// so a retry can be matched with the answer that caused it (the stand-in's
// OnRequest hook sees neither the body nor the status), and counts the
// requests as they arrive (the hook runs only when a request is answered).
// A CONNECT (HTTPS through the proxy) it answers with a tunnel to the
// target's host and port, whatever host was asked, and counts.
type recordingProxy struct {
	target  string
	srv     *http.Server
	url     string
	arrived *notifier // notified at each request's arrival; may be nil

	mu        sync.Mutex
	exchanges []proxyExchange
	arrivals  int
	connects  int
}

func startRecordingProxy(t *testing.T, target string, arrived *notifier) *recordingProxy {
	t.Helper()
	p := &recordingProxy{target: target, arrived: arrived}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			p.tunnel(w)
			return
		}
		ex := proxyExchange{arrived: time.Now()}
		p.mu.Lock()
		p.arrivals++
		p.mu.Unlock()
		if p.arrived != nil {
			p.arrived.notify()
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		calls := body
		if i := bytes.LastIndex(body, []byte(`"sentAt":`)); i >= 0 {
			calls = body[:i]
		}
		ex.body = sha256.Sum256(calls)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		res, err := client.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		ex.status, ex.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		ex.answered = time.Now()
		p.mu.Lock()
		p.exchanges = append(p.exchanges, ex)
		p.mu.Unlock()
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(answer)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.srv = &http.Server{Handler: handler}
	p.url = "http://" + ln.Addr().String()
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Shutdown(context.Background()) })
	return p
}

// tunnel joins a CONNECT's client to the target until either side closes.
func (p *recordingProxy) tunnel(w http.ResponseWriter) {
	p.mu.Lock()
	p.connects++
	p.mu.Unlock()
	target, _ := url.Parse(p.target)
	up, err := net.Dial("tcp", target.Host)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	down, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = up.Close()
		return
	}
	closeBoth := func() { _ = up.Close(); _ = down.Close() }
	if _, err := down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		closeBoth()
		return
	}
	go func() { _, _ = io.Copy(up, buffered); closeBoth() }()
	go func() { _, _ = io.Copy(down, up); closeBoth() }()
}

// tunnels is how many CONNECTs have arrived.
func (p *recordingProxy) tunnels() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connects
}

func (p *recordingProxy) log() []proxyExchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exchanges)
}

// requests is how many requests have arrived, answered or not.
func (p *recordingProxy) requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.arrivals
}

// doneKeys are the keys of the "Object done" log lines in logs.
func doneKeys(logs string) []string {
	var keys []string
	for _, l := range strings.Split(logs, "\n") {
		_, rest, ok := strings.Cut(l, "Object done: ")
		if !ok {
			continue
		}
		rest = strings.ReplaceAll(rest, `\"`, `"`) // logfmt quotes the message
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			key, _ := strconv.Unquote(q)
			keys = append(keys, key)
		}
	}
	return keys
}

// grepLines returns the lines of logs containing any of subs.
func grepLines(logs string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				if len(l) > 240 {
					l = l[:240] + "…"
				}
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
