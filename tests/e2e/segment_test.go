package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const e2eWriteKey = "sk-e2e-never-print-me-0042"

// TestWriteKeyNeverPrinted runs the binary's echo and a failing pipeline
// with the write key in the environment, and checks the key appears in none
// of its output, plain or as a Basic auth header.
func TestWriteKeyNeverPrinted(t *testing.T) {
	srv := segmentapi.StartT(t, e2eWriteKey)
	srv.FailNext(10, 401)
	dir := t.TempDir()
	config := `
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
