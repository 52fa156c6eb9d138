package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// shippedConfig is the production pipeline the fault tests run.
const shippedConfig = "config/currents_to_segment.yaml"

// forwardedTypes are the 50 event types the shipped pipeline sends.
func forwardedTypes() []string {
	var types []string
	for et := range fixtures.SegmentEvents() {
		types = append(types, et)
	}
	slices.Sort(types)
	return types
}

// faultTree writes a bucket tree of the 50 forwarded types under a fresh
// directory and returns it with the files written.
func faultTree(t *testing.T, filesPerType, recordsPerFile int, seed uint64) (string, []fixtures.Written) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: forwardedTypes(),
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
// pipeline writes to the dead letter file.
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

// s3WithTree starts the S3 server process and uploads tree to it.
func s3WithTree(t *testing.T, tree string) (b *buckets.Bucket, stop, restart func()) {
	t.Helper()
	b, stop, restart = buckets.StartS3Process(t, "")
	buckets.UploadDir(t, b, tree)
	return b, stop, restart
}

// faultEnv is the environment of the shipped pipeline reading b (with its
// credentials) into endpoint, every event with a user included.
func faultEnv(b *buckets.Bucket, endpoint, deadLetter string) []string {
	env := []string{
		"CURRENTS_URL=" + b.URL,
		"CURRENTS_WATCH=false",
		"SEGMENT_WRITE_KEY=" + e2eWriteKey,
		"SEGMENT_ENDPOINT=" + endpoint,
		"DEAD_LETTER_PATH=" + deadLetter,
		"CONNECT_HTTP_ADDRESS=127.0.0.1:0",
		"BRAZE_INCLUDE_ANONYMOUS=true",
	}
	return append(env, b.EnvList()...)
}

// notifier wakes waiters whenever something observable happens (a log line,
// a request at the stand-in).
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// connectProc is the binary running the shipped pipeline, its output
// collected line by line.
type connectProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	events *notifier
	done   chan struct{} // closed once the process exited and its output was read
	err    error         // exit status, once done

	mu    sync.Mutex
	lines []string
}

// startConnect starts the binary from the repository root with env and
// args (default: -c the shipped config). events, when not nil, is notified
// at every log line and when the process ends.
func startConnect(t *testing.T, env []string, events *notifier, args ...string) *connectProc {
	t.Helper()
	if len(args) == 0 {
		args = []string{"-c", shippedConfig}
	}
	if events == nil {
		events = newNotifier()
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &connectProc{t: t, cmd: cmd, events: events, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			events.notify()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.done)
		events.notify()
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// count is how many log lines so far contain every one of subs.
func (p *connectProc) count(subs ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if containsAll(l, subs) {
			n++
		}
	}
	return n
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// logs returns the output so far.
func (p *connectProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *connectProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLines waits until n log lines contain every one of subs; it fails
// the test if the process ends first or the deadline passes.
func (p *connectProc) waitLines(n int, timeout time.Duration, subs ...string) {
	p.t.Helper()
	waitFor(p.t, p.events, timeout, fmt.Sprintf("%d log lines with %q", n, subs), func() (bool, error) {
		if p.count(subs...) >= n {
			return true, nil
		}
		if p.exited() {
			return false, fmt.Errorf("the pipeline exited (%v):\n%s", p.err, lastLines(p.logs(), 30))
		}
		return false, nil
	})
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *connectProc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// wait waits for the process to end by itself within timeout and fails the
// test unless it exited cleanly.
func (p *connectProc) wait(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("the pipeline did not finish within %v:\n%s", timeout, lastLines(p.logs(), 40))
	}
	if p.err != nil {
		p.t.Fatalf("the pipeline failed: %v\n%s", p.err, lastLines(p.logs(), 40))
	}
}

// waitFor waits until cond holds, re-checking whenever events fires, for at
// most timeout; cond's error fails the test at once.
func waitFor(t *testing.T, events *notifier, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := events.changed() // before checking, so no change is missed
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// runToEnd runs the pipeline once to its end and returns its output.
func runToEnd(t *testing.T, env []string, args ...string) *connectProc {
	t.Helper()
	p := startConnect(t, env, nil, args...)
	p.wait(time.Minute)
	return p
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

// deadLetter is one line of the dead letter file.
type deadLetter struct {
	id, reason, eventType, source string
}

// readDeadLetterFile reads a dead letter file. tolerant skips lines that are
// not JSON, as the last line of a run killed mid-write can be.
func readDeadLetterFile(t *testing.T, path string, tolerant bool) []deadLetter {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []deadLetter
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var d struct {
			Error     any            `json:"error"`
			EventType any            `json:"event_type"`
			Source    any            `json:"source"`
			Message   map[string]any `json:"message"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			if tolerant {
				continue
			}
			t.Fatalf("dead letter %q is not JSON", line)
		}
		// A call carries the event id as messageId; an event that could not
		// be mapped is there as it came, with its id.
		id, _ := d.Message["messageId"].(string)
		if id == "" {
			id, _ = d.Message["id"].(string)
		}
		str := func(v any) string {
			if v == nil {
				return ""
			}
			return fmt.Sprint(v)
		}
		out = append(out, deadLetter{id: id, reason: str(d.Error), eventType: str(d.EventType), source: str(d.Source)})
	}
	return out
}

// checkDeadLetters checks the dead letters of a scenario: every event
// without a user is there with its reason, and an event with a user only if
// Segment did not accept it, with every one of rejectReason in its reason
// (none is expected when rejectReason is empty). once: each event is there at
// most once (no run was killed). It returns the events Segment rejected.
func checkDeadLetters(t *testing.T, srv *segmentapi.Server, dead []deadLetter, want, noUser map[string]string,
	once bool, rejectReason ...string) map[string]string {
	t.Helper()
	rejected := map[string]string{}
	seen := map[string]int{}
	var delivered []deadLetter // dead letters of calls Segment accepted
	for _, d := range dead {
		if seen[d.id]++; once && seen[d.id] > 1 {
			t.Fatalf("event %s is in the dead letter file %d times", d.id, seen[d.id])
		}
		if key := noUser[d.id]; key != "" {
			if !strings.Contains(d.reason, "neither external_user_id nor user_id") || d.eventType == "" || d.source != key {
				t.Fatalf("dead letter of %s (no user) without its reason, type or object: %+v", d.id, d)
			}
			continue
		}
		key := want[d.id]
		switch {
		case key == "":
			t.Fatalf("dead letter of an event not in the bucket: %+v", d)
		case srv.Count(d.id) > 0:
			delivered = append(delivered, d)
			continue
		case len(rejectReason) == 0:
			t.Fatalf("event %s of %s went to the dead letter file, not to Segment: %s", d.id, key, d.reason)
		}
		for _, s := range rejectReason {
			if !strings.Contains(d.reason, s) {
				t.Fatalf("dead letter of %s lacks %q in its reason %q", d.id, s, d.reason)
			}
		}
		if d.eventType == "" || d.source != key {
			t.Fatalf("dead letter of %s does not name its event type and object %s: %+v", d.id, key, d)
		}
		rejected[d.id] = d.reason
	}
	for id, key := range noUser {
		if seen[id] == 0 {
			t.Fatalf("event %s of %s without a user is not in the dead letter file", id, key)
		}
	}
	if len(delivered) > 0 {
		reasons, sources := map[string]bool{}, map[string]bool{}
		for _, d := range delivered {
			reasons[d.reason], sources[d.source] = true, true
		}
		d := delivered[0]
		t.Errorf("%d of %d dead letters are calls Segment accepted (they come from %d objects and share %d reasons); "+
			"e.g. %s of %s, accepted %d time(s), dead-lettered with %q", len(delivered), len(dead), len(sources),
			len(reasons), d.id, d.source, srv.Count(d.id), d.reason)
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
	body       [32]byte // SHA-256 of the request body: a retry sends the same body
	arrived    time.Time
	answered   time.Time
	status     int
	retryAfter string
}

// recordingProxy forwards requests to the stand-in and records each exchange,
// so a retry can be matched with the answer that caused it (the stand-in's
// OnRequest hook sees neither the body nor the status).
type recordingProxy struct {
	target string
	srv    *http.Server
	url    string

	mu        sync.Mutex
	exchanges []proxyExchange
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	p := &recordingProxy{target: target}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := proxyExchange{arrived: time.Now()}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		ex.body = sha256.Sum256(body)
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

func (p *recordingProxy) log() []proxyExchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exchanges)
}
