package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Misconfigurations that used to leave the shipped pipeline looking healthy
// (/ready 200, no error) while it moved nothing: each now fails at start or
// says what it found, once.

// TestShippedConfigRefusesAQuotedWriteKey: SEGMENT_WRITE_KEY='key' (a docker
// --env-file keeps the quotes) stops the pipeline at start without printing
// the key: Segment answers 200 to the quoted key and drops every call.
func TestShippedConfigRefusesAQuotedWriteKey(t *testing.T) {
	parallelCPU(t)
	env := []string{"CURRENTS_URL=file://" + t.TempDir(), "SEGMENT_WRITE_KEY='" + e2eWriteKey + "'",
		"SEGMENT_ENDPOINT=http://127.0.0.1:9", "CONNECT_HTTP_ADDRESS=127.0.0.1:0", "CURRENTS_WATCH=false"}
	out, err := runConnect(t, repoRoot, env, "-c", shippedConfig)
	if err == nil || !strings.Contains(out, `write_key holds '\''`) || strings.Contains(out, e2eWriteKey) {
		t.Fatalf("exit %v, want a failure at start naming the quote, without the key:\n%s", err, lastLines(out, 10))
	}
}

// TestWatchOverASelectionOfNothingSaysSo: in watch mode, a window around none
// of the export's hours, or event types the export does not hold, read
// nothing for ever; the pipeline now logs what it found and why it reads none.
func TestWatchOverASelectionOfNothingSaysSo(t *testing.T) {
	parallelCPU(t)
	bucket := t.TempDir()
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"}, RecordsPerFile: 5}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ setting, want string }{
		{"CURRENTS_SINCE=2099-01-01", "none of them within since and until (the hours 2099-01-01-00..; CURRENTS_SINCE, CURRENTS_UNTIL)"},
		{"BRAZE_EVENT_TYPES=users.messages.sms.Send", "Found 1 event type under prefix"},
	} {
		srv := segmentapi.StartT(t, e2eWriteKey)
		dir := t.TempDir()
		env := pipelineEnv("file://"+bucket, srv, filepath.Join(dir, "dead.jsonl"), c.setting,
			"CURRENTS_WATCH=true", "CURRENTS_POLL_INTERVAL=100ms", "CURRENTS_CHECKPOINT_KEY="+filepath.Base(dir))
		p := startConnect(t, repoRoot, env, nil, "-c", shippedConfig)
		p.waitLines(1, time.Minute, "level=warning", c.want)
		if got := srv.Stats().Requests; got != 0 {
			t.Errorf("%s: %d requests to Segment, want none", c.setting, got)
		}
		p.kill9()
	}
}

// TestDemoWarnsOfAnOptionValueTheMappingDoesNotKnow: BRAZE_INCLUDE_ANONYMOUS=1
// is not "true", so the mapping left anonymous users out without a word; the
// binary now logs so at start (the demo's logger: logfmt on stderr), and the
// run is otherwise the same.
func TestDemoWarnsOfAnOptionValueTheMappingDoesNotKnow(t *testing.T) {
	parallelCPU(t)
	_, stderr, err := runSplit(t, repoRoot, []string{"BRAZE_INCLUDE_ANONYMOUS=1"}, "-c", "config/demo.yaml")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, lastLines(stderr, 10))
	}
	want := `level=warning msg="BRAZE_INCLUDE_ANONYMOUS=\"1\" is neither false nor true: the mapping takes it as false`
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "209 had no external_user_id") {
		t.Fatalf("stderr lacks %q (or the run's summary):\n%s", want, lastLines(stderr, 10))
	}
}

// TestUnwritableDeadLetterPathIsWarnedOfAtStart: a DEAD_LETTER_PATH under a
// regular file showed only at the first dead letter, which then blocked its
// object for ever with /ready at 200; the binary now logs so at start (the
// shipped config's logger: logfmt on stdout).
func TestUnwritableDeadLetterPathIsWarnedOfAtStart(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	notADir := filepath.Join(dir, "volume")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"CURRENTS_URL=file://" + t.TempDir(), "SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=http://127.0.0.1:9",
		"CONNECT_HTTP_ADDRESS=127.0.0.1:0", "CURRENTS_WATCH=false", "DEAD_LETTER_PATH=" + filepath.Join(notADir, "dead.jsonl")}
	out, err := runConnect(t, repoRoot, env, "-c", shippedConfig)
	if want := `level=warning msg="DEAD_LETTER_PATH=\"` + filepath.Join(notADir, "dead.jsonl") + `\" cannot be written`; err != nil || !strings.Contains(out, want) {
		t.Fatalf("exit %v; the logs lack %q:\n%s", err, want, lastLines(out, 10))
	}
}

// TestMetricsAddressThatCannotBeServedStopsTheRun: a CONNECT_HTTP_ADDRESS
// whose port is taken, or that does not parse, left the pipeline running
// without /metrics, /ready or /ping (Connect only logs "HTTP Server error"),
// unseen by Prometheus and its alerts; the binary now stops the run, in watch
// mode too, with a non-zero exit naming the setting.
func TestMetricsAddressThatCannotBeServedStopsTheRun(t *testing.T) {
	parallelCPU(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for addr, cause := range map[string]string{taken.Addr().String(): "address already in use", "bad::addr": "too many colons"} {
		env := []string{"CURRENTS_URL=file://" + t.TempDir(), "SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=http://127.0.0.1:9",
			"CONNECT_HTTP_ADDRESS=" + addr, "CURRENTS_WATCH=true", "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl")}
		out, err := runConnect(t, repoRoot, env, "-c", shippedConfig)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "Connect's HTTP server failed") ||
			!strings.Contains(out, cause) || !strings.Contains(out, "CONNECT_HTTP_ADDRESS") {
			t.Errorf("%s: exit %v, want 1 and a message naming %q and CONNECT_HTTP_ADDRESS:\n%s", addr, err, cause, lastLines(out, 10))
		}
	}
}

// TestReplayOfAMissingFileStops: DEAD_LETTERS naming a file that does not
// exist (a typo, a file already deleted) left the replay retrying to open it
// every second, for ever, after one warning, so a replay job never ended;
// naming a directory (the bucket output's file:// one) ended the run at once
// with status 0 and nothing replayed, as if done, after one error line. Both
// now exit 1 at start, naming the path, what is wrong and the setting.
func TestReplayOfAMissingFileStops(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	for path, want := range map[string]string{filepath.Join(dir, "dead-letter.jsonl"): "does not exist", dir: "is a directory"} {
		env := []string{"DEAD_LETTERS=" + path, "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "again.jsonl"),
			"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=http://127.0.0.1:9", "CONNECT_HTTP_ADDRESS=127.0.0.1:0"}
		out, err := runConnect(t, repoRoot, env, "-c", "config/dead_letters_to_segment.yaml")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, strconv.Quote(path)+" "+want) ||
			!strings.Contains(out, "DEAD_LETTERS") {
			t.Errorf("%s: exit %v, want 1 and a message naming it, %q and DEAD_LETTERS:\n%s", path, err, want, lastLines(out, 10))
		}
	}
}
