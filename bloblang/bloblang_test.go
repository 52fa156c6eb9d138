package bloblang_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/currents-connect/currents-connect/plugin/brazecurrents"
	_ "github.com/currents-connect/currents-connect/plugin/segment"
)

const (
	// testsDir holds the `connect test` suites of currents_to_segment.blobl, relative to the repository root.
	testsDir = "bloblang/tests"
	// brazeEventTypes is the number of event types Braze's "Segment for Currents" connector sends: each
	// has its own case in event_types.yaml.
	brazeEventTypes = 50
	// edgeCases is the number of other cases (edge_cases.yaml and options.yaml) at least expected, so that
	// the test cannot pass by running nothing.
	edgeCases = 50
)

// TestCurrentsToSegmentUnitTests runs `connect test ./bloblang/tests/...` in process, with the
// components of this distribution, from the repository root (Bloblang imports resolve from the working
// directory), and fails when a case fails or when fewer cases than expected are defined.
func TestCurrentsToSegmentUnitTests(t *testing.T) {
	t.Chdir("..") // the repository root; restored when the test ends
	// Cases without an environment use the defaults, whatever the caller's environment holds (empty
	// means unset to ${CURRENTS_TO_SEGMENT_OPTIONS:null}).
	t.Setenv("CURRENTS_TO_SEGMENT_OPTIONS", "")
	// Without options the mapping reads the BRAZE_* variables: unset, whatever the caller's are.
	for _, k := range []string{"BRAZE_EVENT_TYPES", "BRAZE_EXCLUDE_EVENT_TYPES", "BRAZE_INCLUDE_ANONYMOUS", "BRAZE_OTHER_EVENT_TYPES", "BRAZE_ALL_FIELDS"} {
		t.Setenv(k, "") // restored when the test ends
		_ = os.Unsetenv(k)
	}
	if _, err := os.Stat("go.mod"); err != nil {
		t.Fatalf("not at the repository root: %v", err)
	}
	// connect test builds the mapping again for each case, about 130 times: the parser's garbage is
	// short-lived and the heap small, so at GOGC=100 the collector took half of the test's CPU (53
	// CPU-s; 27 at 400, peak RSS 86 -> 116 MB). The benchmarks of this package keep the default.
	defer debug.SetGCPercent(debug.SetGCPercent(400))

	suites, total := countCases(t)
	if total < brazeEventTypes+edgeCases {
		t.Fatalf("%d test cases defined under %s, want at least %d", total, testsDir, brazeEventTypes+edgeCases)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, code, err := runCLI(t, ctx, "connect", "test", "./"+testsDir+"/...")
	t.Logf("connect test ./%s/... (%d cases in %d files):\n%s", testsDir, total, len(suites), out)
	if err != nil {
		t.Fatalf("connect test: %v", err)
	}
	if code != 0 {
		t.Fatalf("connect test exited with code %d: see the failures above", code)
	}

	// Every suite must have been run and have succeeded.
	succeeded := map[string]bool{}
	for _, m := range regexp.MustCompile(`Test '([^']+)' succeeded`).FindAllStringSubmatch(out, -1) {
		succeeded[filepath.ToSlash(filepath.Clean(m[1]))] = true
	}
	for path := range suites {
		if !succeeded[path] {
			t.Errorf("connect test did not report %s as succeeded", path)
		}
	}
}

// countCases parses every YAML file under testsDir and returns the number of test cases of each file
// that has any, and their total. It checks that event_types.yaml has one case per Braze event type.
func countCases(t *testing.T) (map[string]int, int) {
	t.Helper()
	suites := map[string]int{}
	total := 0
	err := filepath.WalkDir(testsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var file struct {
			Tests []struct {
				Name       string `yaml:"name"`
				InputBatch []struct {
					Metadata map[string]any `yaml:"metadata"`
				} `yaml:"input_batch"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(file.Tests) == 0 {
			return nil
		}
		path = filepath.ToSlash(path)
		suites[path] = len(file.Tests)
		total += len(file.Tests)

		names := map[string]bool{}
		for _, c := range file.Tests {
			if c.Name == "" || names[c.Name] {
				t.Errorf("%s: test case name %q is empty or not unique", path, c.Name)
			}
			names[c.Name] = true
		}
		if filepath.Base(path) == "event_types.yaml" {
			types := map[string]bool{}
			for _, c := range file.Tests {
				for _, in := range c.InputBatch {
					if s, ok := in.Metadata["braze_event_type"].(string); ok {
						types[s] = true
					}
				}
			}
			if len(file.Tests) != brazeEventTypes || len(types) != brazeEventTypes {
				t.Errorf("%s: %d cases over %d event types, want %d of each", path, len(file.Tests), len(types), brazeEventTypes)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) == 0 {
		t.Fatalf("no test cases under %s", testsDir)
	}
	files := make([]string, 0, len(suites))
	for f := range suites {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		t.Logf("%s: %d cases", f, suites[f])
	}
	return suites, total
}

// runCLI runs the Connect CLI in process with args and returns what it wrote to stdout and stderr (the
// CLI writes to os.Stdout and os.Stderr, swapped for a pipe while it runs) and its exit code.
func runCLI(t *testing.T, ctx context.Context, args ...string) (string, int, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&buf, r)
		close(done)
	}()

	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	code, runErr := service.RunCLIToCode(ctx, service.CLIOptSetArgs(args...))
	os.Stdout, os.Stderr = stdout, stderr

	_ = w.Close()
	<-done
	_ = r.Close()
	return regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(buf.String(), ""), code, runErr
}
