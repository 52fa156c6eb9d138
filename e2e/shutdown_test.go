package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestSigtermWithCallsInFlight stops the shipped pipeline, a one-pass
// backfill, with SIGTERM while Segment holds its requests unanswered: it
// exits by itself within the grace, saying how many calls it left
// unconfirmed, dead-letters none of them, and does not record their objects
// as done, so the next run delivers every event. Its status is 1, saying the
// pass did not end: with 0 a supervisor (a Kubernetes Job whose pod was
// evicted, a script's &&) took the backfill for done.
func TestSigtermWithCallsInFlight(t *testing.T) {
	parallelWaiting(t)
	tree, written := faultTree(t, 3, 40, 91)
	want, _ := expectedIDs(written)
	srv := segmentapi.StartT(t, e2eWriteKey)
	// Through a proxy that says when a request arrives: the stand-in's
	// OnRequest hook would say so only when it answers, an hour later.
	events := newNotifier()
	proxy := startRecordingProxy(t, srv.URL(), events)
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	env := pipelineEnv("file://"+tree, srv, dead, "BRAZE_INCLUDE_ANONYMOUS=true", "SEGMENT_ENDPOINT="+proxy.url)
	// A few requests answered, so some objects are done; then none is.
	srv.SlowNext(5, 0)
	srv.SlowNext(10000, time.Hour)
	// The sixth request is held: how many more arrive depends on how many
	// the output sends at once (and on request_timeout's retries).
	p := stopWhileHeld(t, env, events, proxy, 5)
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(lastLines(p.logs(), 1), "Exiting with status 1: the one-pass run was stopped before it read and delivered every object") {
		t.Fatalf("a backfill stopped before its end exited with %v:\n%s", p.err, lastLines(p.logs(), 5))
	}
	if m := regexp.MustCompile(`, ([1-9][0-9]*) unconfirmed at shutdown`).FindStringSubmatch(p.logs()); m == nil {
		t.Fatalf("the closing summary does not count the calls left in flight:\n%s", lastLines(p.logs(), 20))
	}
	if data, err := os.ReadFile(dead); err == nil && len(data) > 0 {
		t.Fatalf("calls in flight at shutdown were dead-lettered:\n%s", data)
	}
	// Connect logs an error for each batch in flight: it must say what
	// became of the calls, not only "context canceled".
	if strings.Contains(p.logs(), "to segment: context canceled") || !strings.Contains(p.logs(), "stopped before Segment confirmed") {
		t.Fatalf("the batches in flight at the stop are logged without saying what became of them:\n%s", lastLines(p.logs(), 20))
	}
	srv.ClearFaults()
	runToEnd(t, env)
	checkDelivered(t, srv, want)
	checkNothingNew(t, env, srv)
}

// TestCustomHTTPSigterm stops the Custom HTTP pipeline with SIGTERM while a
// request waits for Segment: Braze gets 503, so it retries, and the log says
// the request was cut short by the shutdown.
func TestCustomHTTPSigterm(t *testing.T) {
	parallelWaiting(t)
	p := startHTTPPipeline(t, "tok-sigterm", "5m")
	p.srv.SlowNext(10000, time.Hour)
	body := customHTTPBody(t, "users.messages.email.Send", namedEvents(t, "users.messages.email.Send", 5, 93))
	codes := make(chan int, 1)
	go func() { codes <- p.postBytes("Bearer tok-sigterm", body) }()
	waitUntil(t, "the request at Segment", func() bool { return p.srv.Stats().Requests > 0 })
	p.proc.sigterm()
	if code := <-codes; code != http.StatusServiceUnavailable {
		t.Fatalf("a request cut short by shutdown was answered %d", code)
	}
	p.proc.wait(2 * time.Minute)
	if p.proc.count("http request 1 ", "503", "shutting down") != 1 {
		t.Fatalf("the 503 is not logged as a shutdown:\n%s", grepLines(p.proc.logs(), "http request 1 "))
	}
}

// TestSigtermWithNoCheckpoint: a one-pass run with no checkpoint
// (CURRENTS_CHECKPOINT_IN_BUCKET=false and no cache) stopped before its end
// exits with status 1, as one with a checkpoint, and says that the next run
// reads every object again: it said the next run resumes from its
// checkpoint, which there is none of.
func TestSigtermWithNoCheckpoint(t *testing.T) {
	parallelWaiting(t)
	tree, _ := faultTree(t, 2, 20, 93)
	srv := segmentapi.StartT(t, e2eWriteKey)
	events := newNotifier()
	proxy := startRecordingProxy(t, srv.URL(), events)
	srv.SlowNext(10000, time.Hour)
	env := pipelineEnv("file://"+tree, srv, filepath.Join(t.TempDir(), "dead.jsonl"),
		"SEGMENT_ENDPOINT="+proxy.url, "CURRENTS_CHECKPOINT_IN_BUCKET=false")
	p := stopWhileHeld(t, env, events, proxy, 0)
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 || !strings.Contains(lastLines(p.logs(), 1),
		"the one-pass run was stopped before it read and delivered every object. Run it again: with no checkpoint configured, it reads every object again") {
		t.Fatalf("exit %v, want 1 and the last line saying the next run reads every object again:\n%s", p.err, lastLines(p.logs(), 5))
	}
}

// stopWhileHeld runs the shipped config on env, sends it SIGTERM once more
// than answered requests reached proxy (the next one is held by Segment),
// and waits for its exit. A shorter grace than Connect's 20s default: what
// is tested is what the output does when the grace runs out, not how long
// it is.
func stopWhileHeld(t *testing.T, env []string, events *notifier, proxy *recordingProxy, answered int) *connectProc {
	t.Helper()
	p := startConnect(t, repoRoot, env, events, "-c", shippedConfig, "--set", "shutdown_timeout=3s")
	waitFor(t, events, time.Minute, "a request held by Segment", func() (bool, error) { return proxy.requests() > answered, nil })
	p.sigterm()
	p.waitExit(2 * time.Minute) // shutdown_timeout bounds it
	return p
}

// TestCustomHTTPStopTurnsReadyDown stops the Custom HTTP pipeline with
// SIGTERM while Segment holds a request's calls: from the signal on, /ready
// answers 503 while the pipeline drains, so that a load balancer checking it
// sends Braze's requests to another process (Connect's own /ready stayed 200
// until the process exited, up to shutdown_timeout later), while /ping and
// /metrics still answer. A request arriving during the stop is answered 503
// at once, with Retry-After, while Segment still holds the calls (it was held
// until the drain ended or CURRENTS_HTTP_TIMEOUT, and Braze waited that long
// for nothing), and none of its events reaches Segment; the calls held at
// the signal are delivered by the drain once Segment answers, their request
// answered 200, and the process exits 0.
func TestCustomHTTPStopTurnsReadyDown(t *testing.T) {
	parallelCPU(t)
	// The grace and CURRENTS_HTTP_TIMEOUT outlast the test's steps, the drain
	// ending when Segment answers, which the test decides; and the held calls
	// do not make Segment unreachable (/ready 503 for another reason)
	// meanwhile.
	p := startHTTPPipelineArgs(t, "tok-drain", "5m", []string{"--set", "shutdown_timeout=2m",
		"--set", "output.fallback.0.reject_errored.segment.unreachable_after=10m"})
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	p.srv.OnRequest(func(*http.Request, []segmentapi.Call) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	held := namedEvents(t, "users.messages.email.Send", 5, 95)
	codes := make(chan int, 1)
	go func() { codes <- p.postBytes("Bearer tok-drain", customHTTPBody(t, "users.messages.email.Send", held)) }()
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatalf("no request reached Segment:\n%s", lastLines(p.proc.logs(), 30))
	}
	base := "http://" + p.metrics
	// The dead letter output becomes active after the first request may
	// have reached Segment: /ready turns 200 once it has.
	waitUntil(t, "/ready answering 200 before the stop", func() bool {
		code, _ := httpGet(t, base+"/ready")
		return code == http.StatusOK
	})
	p.proc.sigterm()
	waitUntil(t, "/ready answering 503 during the stop", func() bool {
		if p.proc.exited() {
			t.Fatalf("the process exited before /ready answered 503:\n%s", lastLines(p.proc.logs(), 30))
		}
		code, _ := httpGet(t, base+"/ready")
		return code == http.StatusServiceUnavailable
	})
	if _, body := httpGet(t, base+"/ready"); !strings.Contains(body, "Received SIGTERM") {
		t.Errorf("/ready during the stop does not say why: %s", body)
	}
	for _, path := range []string{"/ping", "/metrics"} {
		if code, body := httpGet(t, base+path); code != http.StatusOK {
			t.Errorf("%s during the stop: %d %s", path, code, body)
		}
	}
	// The input sees the stop once Connect stops reading, just after the signal.
	p.proc.waitLines(1, time.Minute, "Stopping: new requests are answered 503 at once")
	late := namedEvents(t, "users.messages.email.Send", 3, 96)
	lateBody := customHTTPBody(t, "users.messages.email.Send", late)
	type answered struct {
		code   int
		header http.Header
	}
	lateAnswer := make(chan answered, 1)
	go func() {
		code, header := p.post("Bearer tok-drain", bytes.NewReader(lateBody), int64(len(lateBody)))
		lateAnswer <- answered{code, header}
	}()
	// Segment still holds the calls: the answer comes before the drain ends
	// (the bound only fails the test; CURRENTS_HTTP_TIMEOUT is 5m).
	select {
	case a := <-lateAnswer:
		if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("a request arriving during the stop was answered %d (Retry-After %q)", a.code, a.header.Get("Retry-After"))
		}
	case <-time.After(time.Minute):
		t.Fatalf("a request arriving during the stop is held while the drain waits for Segment:\n%s", lastLines(p.proc.logs(), 30))
	}
	// Logged once answered: it says the process shuts down.
	p.proc.waitLines(1, time.Minute, "http request 2 ", "503", "shutting down")
	released = true
	close(release)
	if code := <-codes; code != http.StatusOK {
		t.Fatalf("the request whose calls Segment held, delivered by the drain, was answered %d", code)
	}
	p.proc.wait(time.Minute)
	p.checkDelivered(held)
	for _, e := range late {
		if n := p.srv.Count(e["id"].(string)); n != 0 {
			t.Fatalf("event %s of the request answered 503 during the stop reached Segment", e["id"])
		}
	}
}

// TestReplayStoppedBySignalExitsOne stops config/dead_letters_to_segment.yaml
// with SIGTERM while Segment holds its calls: it exits with status 1 and says
// the replay did not end, so that a script does not take it for done and
// delete the file it read (it exited 0, as a replay that ended).
func TestReplayStoppedBySignalExitsOne(t *testing.T) {
	parallelWaiting(t)
	dir := t.TempDir()
	letters := filepath.Join(dir, "dead-letter.jsonl")
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, `{"error":"x","event_type":"users.messages.email.Send","source":"currents/x.avro","message":{"type":"track","messageId":"m-%d","userId":"u-%d","event":"Email Sent","timestamp":"2026-01-01T00:00:00Z"}}`+"\n", i, i)
	}
	if err := os.WriteFile(letters, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := segmentapi.StartT(t, keyDefault)
	srv.SlowNext(10000, time.Hour)
	p := startConnect(t, repoRoot, []string{"DEAD_LETTERS=" + letters, "DEAD_LETTER_PATH=" + filepath.Join(dir, "replayed.jsonl"),
		"SEGMENT_ENDPOINT=" + srv.URL(), "SEGMENT_WRITE_KEY=" + keyDefault}, nil,
		"-c", "config/dead_letters_to_segment.yaml", "--set", "shutdown_timeout=3s")
	waitUntil(t, "a request at Segment", func() bool { return srv.Stats().Requests > 0 })
	p.sigterm()
	p.waitExit(2 * time.Minute) // shutdown_timeout bounds it
	var exit *exec.ExitError
	if !errors.As(p.err, &exit) || exit.ExitCode() != 1 ||
		!strings.Contains(lastLines(p.logs(), 1), "Exiting with status 1: the file input's run was stopped by a signal (Received SIGTERM") {
		t.Fatalf("a replay stopped by SIGTERM exited with %v:\n%s", p.err, lastLines(p.logs(), 5))
	}
}
