package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// repoRoot is where the shipped configs run from: Bloblang imports resolve
// from the working directory.
const repoRoot = ".."

// shortLease is the checkpoint lease of the pipelines the tests run. A
// process that claims a checkpoint reads its claim back a tenth of the lease
// later (at most 1 s), in case another process claimed it at the same moment:
// with the default lease of 1m that is a second of waiting at every start.
// Only TestSecondProcessOnOneCheckpointWaits runs two processes on one
// checkpoint at once, and it sets the default back. Each call to the
// checkpoint's store is cut at a third of the lease: 1 s leaves a busy
// machine's file writes room.
const shortLease = "CURRENTS_CHECKPOINT_LEASE=3s"

// pipelineEnv is the environment of config/currents_to_segment.yaml for a
// one-pass run over bucketURL into the stand-in.
func pipelineEnv(bucketURL string, srv *segmentapi.Server, deadLetter string, extra ...string) []string {
	return append([]string{
		"CURRENTS_URL=" + bucketURL,
		"CURRENTS_WATCH=false",
		"SEGMENT_WRITE_KEY=" + e2eWriteKey,
		"SEGMENT_ENDPOINT=" + srv.URL(),
		"DEAD_LETTER_PATH=" + deadLetter,
		"CONNECT_HTTP_ADDRESS=127.0.0.1:0",
		shortLease,
	}, extra...)
}

// TestShippedPipelineMapsEveryEventType runs every fixture file of every
// event type, under every schema version, through config/currents_to_segment.yaml
// into the Segment stand-in, and checks each call against Braze's table
// (facts/segment_events.tsv) and Segment's limits.
func TestShippedPipelineMapsEveryEventType(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 30, Seed: 51})
	if err != nil {
		t.Fatal(err)
	}
	// Older schema versions of the 50 types, in a later hour.
	for i, et := range fixtures.EventTypes() {
		for v, sv := range fixtures.Versions(et) {
			spec := fixtures.FileSpec{EventType: et, Fields: sv.Fields, Records: 5, Seed: uint64(1000 + 10*i + v),
				DateHour: fixtures.DefaultDateHour.Add(5 * time.Hour), Version: v + 1, Offset: v}
			w := writeSpec(t, bucket, spec)
			written = append(written, w)
		}
	}
	srv := segmentapi.StartT(t, e2eWriteKey)
	deadLetter := filepath.Join(dir, "dead.jsonl")
	out, err := runConnect(t, repoRoot, pipelineEnv("file://"+bucket, srv, deadLetter, "BRAZE_INCLUDE_ANONYMOUS=true"),
		"-c", "config/currents_to_segment.yaml")
	if err != nil {
		t.Fatalf("pipeline failed: %v\n%s", err, lastLines(out, 30))
	}

	table := fixtures.SegmentEvents()
	calls := map[string]segmentapi.Call{}
	for _, c := range srv.Accepted() {
		calls[fmt.Sprint(c["messageId"])] = c
	}
	sent, noUser := 0, 0
	for _, w := range written {
		ev, forwarded := table[w.Spec.EventType]
		for _, rec := range w.Records {
			call, got := calls[rec["id"].(string)]
			if forwarded && rec["user_id"] == nil && rec["external_user_id"] == nil {
				// No user at all (user_id is nullable in the InboundReceive types): skipped.
				if got {
					t.Fatalf("%s event %s without any user was sent", w.Spec.EventType, rec["id"])
				}
				noUser++
				continue
			}
			if !forwarded {
				if got {
					t.Fatalf("%s is not one of the 50 types but was sent", w.Spec.EventType)
				}
				continue
			}
			if !got {
				t.Fatalf("%s event %s of %s was not sent", w.Spec.EventType, rec["id"], w.Key)
			}
			checkCall(t, ev, rec, call)
			sent++
		}
	}
	if srv.Duplicates() != 0 || srv.UniqueMessageIDs() != sent {
		t.Fatalf("stand-in holds %d calls (%d duplicates), %d expected", srv.UniqueMessageIDs(), srv.Duplicates(), sent)
	}
	stats := srv.Stats()
	if stats.Rejected400 != 0 || stats.SilentlyDropped != 0 || stats.MaxCallsInRequest > 2500 || stats.MaxRequestBytes > segmentapi.DefaultMaxBatchBytes {
		t.Fatalf("Segment's limits broken: %+v", stats)
	}
	// The events without any user are skipped as the mapping skips anonymous
	// users, not failed: no dead letter, no error line (the mapping processor
	// logs every failure), anonymous users included.
	if noUser == 0 {
		t.Fatal("no event without any user: the fixtures do not exercise the skip")
	}
	if dead := deadletter.Read(t, deadLetter, false); len(dead) != 0 {
		t.Fatalf("%d dead letters, want none: %v", len(dead), dead)
	}
	if errs := strings.Count(out, "level=error"); errs != 0 {
		t.Fatalf("%d error lines, want none:\n%s", errs, lastLines(out, 10))
	}
	t.Logf("%d calls checked against the table, %d events without any user skipped, %d requests", sent, noUser, stats.Requests)
}

func writeSpec(t *testing.T, bucket string, spec fixtures.FileSpec) fixtures.Written {
	t.Helper()
	key := fixtures.Key(spec)
	path := filepath.Join(bucket, key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := fixtures.WriteFile(f, spec)
	if err != nil {
		t.Fatal(err)
	}
	return fixtures.Written{Key: key, Path: path, Spec: spec, Records: records}
}

// checkCall compares one call with what Braze's table says the event becomes.
func checkCall(t *testing.T, ev fixtures.SegmentEvent, rec map[string]any, call segmentapi.Call) {
	t.Helper()
	where := ev.EventType + " " + rec["id"].(string)
	want := map[string]any{"type": "track", "event": ev.Name, "messageId": rec["id"],
		"timestamp": time.Unix(rec["time"].(int64), 0).UTC().Format(time.RFC3339)}
	if v := rec["external_user_id"]; v != nil {
		want["userId"] = v
	}
	if v := rec["user_id"]; v != nil {
		want["anonymousId"] = v
	}
	for k, v := range want {
		if fmt.Sprint(call[k]) != fmt.Sprint(v) {
			t.Fatalf("%s: %s = %v, want %v", where, k, call[k], v)
		}
	}
	for _, k := range []string{"userId", "anonymousId"} {
		if _, ok := want[k]; !ok && call[k] != nil {
			t.Fatalf("%s: %s = %v, want none", where, k, call[k])
		}
	}
	context, _ := call["context"].(map[string]any)
	compareFields(t, where+" context.traits", context["traits"], ev.Traits, rec)
	compareFields(t, where+" context.device", context["device"], ev.Device, rec)
	props := slices.Clone(ev.Properties)
	for k := range rec {
		if !ev.Names(k) { // a field of an older schema only: sent as it is named
			props = append(props, fixtures.Rename{To: k, From: k})
		}
	}
	compareFields(t, where+" properties", call["properties"], props, rec)
}

// compareFields checks that got holds exactly the non-null renamed fields.
func compareFields(t *testing.T, where string, got any, fields []fixtures.Rename, rec map[string]any) {
	t.Helper()
	obj, _ := got.(map[string]any)
	want := map[string]any{}
	for _, f := range fields {
		if v, ok := rec[f.From]; ok && v != nil {
			want[f.To] = v
		}
	}
	if len(obj) != len(want) {
		t.Fatalf("%s: %d fields %v, want %d %v", where, len(obj), keys(obj), len(want), keys(want))
	}
	for k, v := range want {
		a, _ := json.Marshal(obj[k])
		b, _ := json.Marshal(v)
		if string(a) != string(b) && !sameNumber(obj[k], v) {
			t.Fatalf("%s: %s = %s, want %s", where, k, a, b)
		}
	}
}

func sameNumber(a, b any) bool {
	n, ok := a.(json.Number)
	if !ok {
		return false
	}
	f, err := n.Float64()
	bf, isFloat := b.(float64)
	return err == nil && isFloat && float32(f) == float32(bf)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// shippedConfigsEnv is the environment every shipped config requires.
var shippedConfigsEnv = []string{"CURRENTS_URL=file:///tmp", "SEGMENT_WRITE_KEY=k", "CURRENTS_HTTP_TOKEN=t", "CURRENTS_NOTIFICATIONS=mem://created"}

// TestShippedConfigsLint lints every config in config/ as `connect lint`
// does, with the required environment set.
func TestShippedConfigsLint(t *testing.T) {
	parallelCPU(t)
	configs, _ := filepath.Glob(filepath.Join(repoRoot, "config", "*.yaml"))
	if len(configs) < 3 {
		t.Fatalf("only %d configs", len(configs))
	}
	args := []string{"lint"}
	for _, c := range configs {
		rel, _ := filepath.Rel(repoRoot, c)
		args = append(args, rel)
	}
	if out, err := runConnect(t, repoRoot, shippedConfigsEnv, args...); err != nil {
		t.Fatalf("lint: %v\n%s", err, out)
	}
}

// TestShippedConfigsPipelineThreads runs `connect echo` on every shipped
// config: the pipeline's threads are GOMAXPROCS (what a container's CPU quota
// gives) unless CURRENTS_PIPELINE_THREADS sets them.
func TestShippedConfigsPipelineThreads(t *testing.T) {
	parallelCPU(t)
	configs, _ := filepath.Glob(filepath.Join(repoRoot, "config", "*.yaml"))
	for _, c := range configs {
		rel, _ := filepath.Rel(repoRoot, c)
		for env, want := range map[string]string{"GOMAXPROCS=1": "threads: 1", "CURRENTS_PIPELINE_THREADS=3": "threads: 3"} {
			out := echoShipped(t, rel, env)
			if !strings.Contains(out, "\n  "+want+"\n") {
				t.Errorf("echo %s with %s: no %q in the pipeline:\n%s", rel, env, want, out)
			}
		}
	}
}

// The bucket configs send SEGMENT_MAX_IN_FLIGHT batches at once, 8 unless
// set: what bounds a backfill's throughput against a distant Segment.
func TestBucketConfigsMaxInFlight(t *testing.T) {
	parallelCPU(t)
	for _, rel := range []string{"config/currents_to_segment.yaml", "config/currents_notifications_to_segment.yaml"} {
		for _, c := range []struct {
			env  []string
			want string
		}{{nil, "max_in_flight: 8"}, {[]string{"SEGMENT_MAX_IN_FLIGHT=32"}, "max_in_flight: 32"}} {
			out := echoShipped(t, rel, c.env...)
			if got := strings.Count(out, "max_in_flight:"); got != 1 || !strings.Contains(out, " "+c.want+"\n") {
				t.Errorf("echo %s with %q: want one %q in the segment output:\n%s", rel, c.env, c.want, out)
			}
		}
	}
}

// echoShipped runs `connect echo` on a shipped config with the environment
// every shipped config requires, and env, and returns what it printed.
func echoShipped(t *testing.T, rel string, env ...string) string {
	t.Helper()
	out, errOut, err := runSplit(t, repoRoot, append(append([]string{}, shippedConfigsEnv...), env...), "echo", rel)
	if err != nil {
		t.Fatalf("echo %s with %q: %v\n%s", rel, env, err, errOut)
	}
	return out
}
