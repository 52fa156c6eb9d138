package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// waitUntil polls cond (a scrape, a count) until it holds, with a bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling an observable state, not timing a result
	}
}

// TestMetricsAndReadiness runs the shipped pipeline in watch mode and checks
// what operators rely on: the Prometheus scrape carries Connect's metrics and
// ours, and /ready turns 503 while Segment is unreachable and 200 once back.
func TestMetricsAndReadiness(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 71,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Delivery", "users.behaviors.liveactivity.UpdateTokenChange"}})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, w := range written {
		if _, ok := fixtures.SegmentEvents()[w.Spec.EventType]; ok {
			want += len(w.Records)
		}
	}
	srv := segmentapi.StartT(t, e2eWriteKey)
	// Segment is unreachable after 1s of failing requests, not the default 30s,
	// retried every 50 to 500 ms (quickRetries), not 0.5 to 30 s: what is
	// tested is /ready's answer, not the defaults.
	admin, p := startWatchingPipeline(t, "file://"+bucket, srv, dir,
		append([]string{"--set", "output.fallback.0.reject_errored.segment.unreachable_after=1s"}, quickRetries...)...)
	waitUntil(t, "every event in Segment", func() bool { return srv.UniqueMessageIDs() == want })
	// Objects are done once their last batch is acked, just after Segment took it.
	var metrics string
	waitUntil(t, "every object done in /metrics", func() bool {
		code, body := httpGet(t, "http://"+admin+"/metrics")
		metrics = body
		return code == http.StatusOK && strings.Contains(body, `braze_currents_objects_done{label="",path="root.input"} 3`)
	})
	for _, series := range []string{
		// Component metrics carry Connect's label and path labels too.
		`braze_currents_events_read{event_type="users.messages.email.Send",label="",path="root.input"} 10`,
		`braze_currents_objects_done{label="",path="root.input"} 3`,
		`braze_currents_checkpoint_lag_seconds{`,
		`braze_currents_events_read{event_type="users.behaviors.liveactivity.UpdateTokenChange",label="",path="root.input"} 10`,
		`currents_events_mapped{event_type="users.messages.sms.Delivery",`,
		`segment_calls_sent{label="",path="root.output.fallback.0.reject_errored"} 20`,
		`segment_requests{label="",path="root.output.fallback.0.reject_errored",status="200"}`,
		`segment_request_latency_seconds_bucket`,
		`input_received{label="",path="root.input"}`,
		`output_sent`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s\n%s", series, grepLines(metrics, "segment_calls", "segment_retries", "segment_requests", "objects_done", "input_received", "output_sent"))
		}
	}
	if code, body := httpGet(t, "http://"+admin+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready answered %d while everything is up: %s", code, body)
	}

	// Segment goes away; a new file arrives: the output finds Segment down.
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	// In the current hour: watch polls list only the hours that can still get files.
	spec := fixtures.FileSpec{EventType: "users.messages.email.Send", Records: 5, Seed: 72, Offset: 99,
		DateHour: time.Now().UTC().Truncate(time.Hour)}
	late := writeSpec(t, bucket, spec)
	waitUntil(t, "/ready to report Segment down", func() bool {
		code, _ := httpGet(t, "http://"+admin+"/ready")
		return code == http.StatusServiceUnavailable
	})
	// What the README's troubleshooting tells operators to look for in the logs.
	quote := troubleshootingLog(t, "no route to Segment")
	p.waitLines(1, time.Minute, quote)
	if !strings.Contains(readRepoFile(t, "docs/dashboard.md"), "Look for `"+quote+"`") {
		t.Errorf("docs/dashboard.md does not say to look for %q, as the README does", quote)
	}
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/ready to recover", func() bool {
		code, _ := httpGet(t, "http://"+admin+"/ready")
		return code == http.StatusOK
	})
	waitUntil(t, "the late file's events in Segment", func() bool {
		for _, r := range late.Records {
			if srv.Count(r["id"].(string)) == 0 {
				return false
			}
		}
		return true
	})
}

// troubleshootingLog is the log text the README's troubleshooting row whose
// cause holds cause quotes: the first `…` after "logs ".
func troubleshootingLog(t *testing.T, cause string) string {
	t.Helper()
	for _, row := range strings.Split(readRepoFile(t, "README.md"), "\n") {
		cells := strings.Split(row, " | ")
		if len(cells) < 3 || !strings.Contains(cells[1], cause) {
			continue
		}
		_, quoted, ok := strings.Cut(cells[0], "logs `")
		if quoted, _, ok = strings.Cut(quoted, "`"); ok {
			return quoted
		}
	}
	t.Fatalf("the README has no troubleshooting row for %q that quotes a log", cause)
	return ""
}

// startWatchingPipeline runs the shipped config in watch mode over bucketURL
// into srv, with its admin HTTP server on a free port, and stops it when the
// test ends. It returns the admin address and the process.
func startWatchingPipeline(t *testing.T, bucketURL string, srv *segmentapi.Server, dir string, args ...string) (string, *connectProc) {
	t.Helper()
	admin := freeAddr(t)
	env := pipelineEnv(bucketURL, srv, filepath.Join(dir, "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true",
		"CURRENTS_WATCH=true", "CURRENTS_POLL_INTERVAL=100ms", "CONNECT_HTTP_ADDRESS="+admin,
		"BRAZE_EVENT_TYPES=users.messages.*,users.behaviors.liveactivity.UpdateTokenChange")
	p := startConnect(t, repoRoot, env, nil, append([]string{"-c", shippedConfig}, args...)...)
	return admin, p
}
