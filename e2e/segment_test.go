package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const e2eWriteKey = "sk-e2e-never-print-me-0042"

// TestWriteKeyNeverPrinted runs the binary's echo and a failing pipeline
// with the write key in the environment, and checks the key appears in none
// of its output, plain or as a Basic auth header.
func TestWriteKeyNeverPrinted(t *testing.T) {
	parallelCPU(t)
	srv := segmentapi.StartT(t, e2eWriteKey)
	srv.FailNext(10, 401)
	dir := t.TempDir()
	config := `
http:
  enabled: false # no port to share with other runs: the binary stops a run whose server cannot listen
input:
  generate:
    count: 3
    interval: ""
    mapping: 'root = {"type":"track","event":"E","userId":"u" + count("c").string()}'
output:
  fallback:
    - segment:
        write_key: ${SEGMENT_WRITE_KEY}
        endpoint: ` + srv.URL() + `
        backoff: {initial_interval: 20ms, max_interval: 50ms} # probes of the refused key
    - stdout: {}
      processors:
        - mapping: 'root = @fallback_error'
logger:
  level: debug
`
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"SEGMENT_WRITE_KEY=" + e2eWriteKey}
	echo, err := runConnect(t, dir, env, "echo", "c.yaml")
	if err != nil {
		t.Fatalf("echo: %v\n%s", err, echo)
	}
	if !strings.Contains(echo, "write_key: ${SEGMENT_WRITE_KEY}") && !strings.Contains(echo, "SECRET_SCRUBBED") {
		t.Fatalf("echo shows neither the variable nor a scrubbed key:\n%s", echo)
	}
	run, err := runConnect(t, dir, env, "-c", "c.yaml")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, run)
	}
	if !strings.Contains(run, "401") {
		t.Fatalf("the permanent 401 failures were not reported:\n%s", run)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(e2eWriteKey + ":"))
	for _, out := range []string{echo, run} {
		if strings.Contains(out, e2eWriteKey) || strings.Contains(out, basic) {
			t.Fatalf("write key printed:\n%s", out)
		}
	}
}

// TestEndpointCredentialsNeverPrinted runs the shipped pipeline with a
// SEGMENT_ENDPOINT that carries a user and password, as a proxy's URL may,
// against a Segment that refuses the key: the error naming the endpoint
// leaves the password out, as `connect echo` and Go's own errors do.
func TestEndpointCredentialsNeverPrinted(t *testing.T) {
	parallelCPU(t)
	const password = "proxy-pass-never-print-me-7"
	bucket := t.TempDir()
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 5, Seed: 83,
		EventTypes: []string{"users.messages.email.Send"}}); err != nil {
		t.Fatal(err)
	}
	srv := segmentapi.StartT(t, e2eWriteKey)
	srv.RevokeKey(true)
	endpoint := strings.Replace(srv.URL(), "://", "://proxyuser:"+password+"@", 1)
	env := []string{"CURRENTS_URL=file://" + bucket, "CURRENTS_WATCH=false", "CURRENTS_CHECKPOINT_IN_BUCKET=false",
		"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=" + endpoint,
		"DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl"), "CONNECT_HTTP_ADDRESS=127.0.0.1:0"}

	echo, err := runConnect(t, repoRoot, env, "echo", shippedConfig)
	if err != nil || strings.Contains(echo, password) {
		t.Fatalf("echo (%v) printed the endpoint's password or failed:\n%s", err, echo)
	}
	p := startConnect(t, repoRoot, env, nil)
	p.waitLines(1, time.Minute, "refused the write key (HTTP 401)", "proxyuser")
	if strings.Contains(p.logs(), password) {
		t.Fatalf("the endpoint's password was logged:\n%s", grepLines(p.logs(), password))
	}
}

// TestWriteKeyWithNewlineDelivers runs the shipped pipeline with the write
// key followed by a newline, as a Kubernetes secret made from a file written
// by `echo` holds it. Segment answers 200 to a key it does not know and
// drops the calls, so a key sent with its newline would lose every event
// without an error: the output takes the key without it, as it takes the
// keys of write_keys.
func TestWriteKeyWithNewlineDelivers(t *testing.T) {
	parallelCPU(t)
	bucket := t.TempDir()
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 84,
		EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := expectedIDs(written)
	srv := segmentapi.StartT(t, e2eWriteKey)
	runToEnd(t, pipelineEnv("file://"+bucket, srv, filepath.Join(t.TempDir(), "dead.jsonl"),
		"SEGMENT_WRITE_KEY="+e2eWriteKey+"\n", "BRAZE_INCLUDE_ANONYMOUS=true", "CURRENTS_CHECKPOINT_IN_BUCKET=false"))
	if n := srv.Stats().UnknownKeyCalls; n != 0 {
		t.Fatalf("%d calls went to Segment under the key with its newline, which Segment drops", n)
	}
	checkDelivered(t, srv, want)
}
