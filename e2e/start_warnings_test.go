package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The binary's own checks of the environment (BRAZE_* option values,
// DEAD_LETTER_PATH) log through the config's logger when a stream runs, and
// say nothing in the commands that run none.

// startWarningsConfig runs one message to nothing and ends, logging JSON at
// warn, as a config feeding a log pipeline would.
const startWarningsConfig = `http:
  enabled: false
input:
  generate:
    count: 1
    interval: ""
    mapping: root = {}
output:
  drop: {}
logger:
  format: json
  level: warn
`

// startWarningsSetup writes the config, an env file for -e holding a
// BRAZE_* value the mapping does not know, and returns them with an
// environment holding another and a DEAD_LETTER_PATH under a regular file.
func startWarningsSetup(t *testing.T) (config, envFile, deadLetter string, env []string) {
	t.Helper()
	dir := t.TempDir()
	config, envFile = filepath.Join(dir, "config.yaml"), filepath.Join(dir, "connect.env")
	notADir := filepath.Join(dir, "volume")
	for path, text := range map[string]string{config: startWarningsConfig, envFile: "BRAZE_ALL_FIELDS=yes\n", notADir: ""} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deadLetter = filepath.Join(notADir, "dead.jsonl")
	return config, envFile, deadLetter, []string{"BRAZE_INCLUDE_ANONYMOUS=1", "DEAD_LETTER_PATH=" + deadLetter}
}

// TestStartWarningsAreLogLinesOfTheConfigsLogger: with logger.format json,
// every line the run writes is a JSON log line, the warnings among them at
// level warning (logrus's name for warn). They were plain "warning: …"
// lines on stderr, which a JSON log pipeline cannot parse, and a value from
// an env file (-e) was not checked at all: it is read after main started.
func TestStartWarningsAreLogLinesOfTheConfigsLogger(t *testing.T) {
	parallelCPU(t)
	config, envFile, deadLetter, env := startWarningsSetup(t)
	stdout, stderr, err := runSplit(t, repoRoot, env, "-e", envFile, "-c", config)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, lastLines(stdout, 10), lastLines(stderr, 10))
	}
	want := []string{
		`BRAZE_INCLUDE_ANONYMOUS="1" is neither false nor true: the mapping takes it as false (the default); set BRAZE_INCLUDE_ANONYMOUS=true to turn it on`,
		`BRAZE_ALL_FIELDS="yes" is neither false nor true: the mapping takes it as false (the default); set BRAZE_ALL_FIELDS=true to turn it on`,
		`DEAD_LETTER_PATH="` + deadLetter + `" cannot be written (`,
	}
	found := make([]bool, len(want))
	for _, line := range strings.Split(stdout+"\n"+stderr, "\n") {
		if line == "" {
			continue
		}
		var entry struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("a line that is no JSON log line: %q", line)
			continue
		}
		for i, w := range want {
			if strings.HasPrefix(entry.Msg, w) {
				found[i] = true
				if entry.Level != "warning" {
					t.Errorf("logged at level %q, want warning: %s", entry.Level, line)
				}
			}
		}
	}
	for i, w := range want {
		if !found[i] {
			t.Errorf("no log line starting %q\nstdout:\n%s\nstderr:\n%s", w, lastLines(stdout, 10), lastLines(stderr, 10))
		}
	}
}

// TestStartWarningsOnlyWhenAStreamRuns: lint, list and --version run no
// stream, read no option, and write no warning of one (they did, before
// their own output).
func TestStartWarningsOnlyWhenAStreamRuns(t *testing.T) {
	parallelCPU(t)
	config, envFile, _, env := startWarningsSetup(t)
	for _, args := range [][]string{{"lint", config}, {"-e", envFile, "lint", config}, {"list", "inputs"}, {"--version"}} {
		stdout, stderr, err := runSplit(t, repoRoot, env, args...)
		if err != nil {
			t.Errorf("connect %v: %v\n%s", args, err, lastLines(stderr, 10))
		}
		for _, name := range []string{"BRAZE_", "DEAD_LETTER_PATH"} {
			if strings.Contains(stdout+stderr, name) {
				t.Errorf("connect %v writes of %s:\nstdout:\n%s\nstderr:\n%s", args, name, lastLines(stdout, 5), lastLines(stderr, 5))
			}
		}
	}
}
