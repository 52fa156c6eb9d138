package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestCheckpointCacheFromAResourcesFile: the README's checkpoint without
// write access to the bucket, in a file cache defined in a resources file
// given with -r, which the binary reads as Connect does. With the cache's
// label mistyped, or the -r file left out, the input failed to connect every
// second, for ever ("unable to locate resource"), and a one-pass run never
// ended; it now stops at start naming the cache, as benthos core's
// components that use a cache do. A -r path that does not exist stops the
// run, as in Connect.
func TestCheckpointCacheFromAResourcesFile(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: fixtures.SegmentEventTypes()[:2], RecordsPerFile: 5, Seed: 30}); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	resources := filepath.Join(dir, "resources.yaml")
	if err := os.WriteFile(resources, []byte("cache_resources:\n  - label: progress\n    file:\n      directory: "+cache+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := segmentapi.StartT(t, e2eWriteKey)
	env := pipelineEnv("file://"+bucket, srv, filepath.Join(dir, "dead.jsonl"), "CURRENTS_CHECKPOINT_IN_BUCKET=false")
	useCache := func(label string) []string { return []string{"-s", "input.braze_currents.checkpoint.cache=" + label} }

	p := runToEnd(t, env, append(append([]string{"-r", resources}, useCache("progress")...), "-c", shippedConfig)...)
	saved, err := filepath.Glob(filepath.Join(cache, "currents-connect-checkpoint-*"))
	if err != nil || len(saved) == 0 || srv.Stats().Accepted == 0 {
		t.Fatalf("checkpoint files %v (%v), %d calls in Segment, want both:\n%s", saved, err, srv.Stats().Accepted, lastLines(p.logs(), 10))
	}

	for _, c := range []struct{ name, label string }{{"a mistyped label", "progres"}, {"no -r file", "progress"}} {
		args := append(useCache(c.label), "-c", shippedConfig)
		if c.name != "no -r file" {
			args = append([]string{"-r", resources}, args...)
		}
		events := newNotifier()
		p := startConnect(t, repoRoot, env, events, args...)
		waitFor(t, events, time.Minute, "the run to stop at start", func() (bool, error) {
			if p.count("Failed to connect") > 0 {
				return false, fmt.Errorf("%s: the input retries:\n%s", c.name, lastLines(p.logs(), 5))
			}
			return p.exited(), nil
		})
		if want := fmt.Sprintf("cache resource %q was not found", c.label); p.err == nil || !strings.Contains(p.logs(), want) || !strings.Contains(p.logs(), "given with -r") {
			t.Errorf("%s: exit %v, want a failure saying %q and naming -r:\n%s", c.name, p.err, want, lastLines(p.logs(), 10))
		}
	}

	missing := filepath.Join(dir, "no-such-resources.yaml")
	out, err := runConnect(t, repoRoot, env, "-r", missing, "-c", shippedConfig)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, missing+": no such file or directory") {
		t.Errorf("-r %s: exit %v, want 1 naming the file:\n%s", missing, err, lastLines(out, 10))
	}
}
