package e2e

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Three Segment sources' keys, and the app groups (and integrations) whose
// events go under them.
const (
	keyGroupA  = "sk-route-a-never-print-0101"
	keyGroupB  = "sk-route-b-never-print-0202"
	keyDefault = "sk-default-never-print-0303"
)

// routingTree writes email.Send files (app_group_id in the call) and
// experiment split files (no app_group_id: routed by integration) for three
// integrations, one app group each, of records events each, seeded from
// seed. It returns the sendable events' ids by the app group whose events
// they are.
func routingTree(t *testing.T, bucket string, records int, seed uint64) map[string][]string {
	t.Helper()
	byGroup := map[string][]string{}
	for i, g := range []string{"group-a", "group-b", "group-c"} {
		for j, et := range []string{"users.messages.email.Send", "users.canvas.experimentstep.SplitEntry"} {
			spec := fixtures.FileSpec{EventType: et, Records: records, Seed: seed + uint64(10*i+j),
				IntegrationID: fixtures.IntegrationID(uint64(i)), AppGroupID: g}
			for _, rec := range writeSpec(t, bucket, spec).Records {
				if rec["external_user_id"] != nil || rec["user_id"] != nil {
					byGroup[g] = append(byGroup[g], rec["id"].(string))
				}
			}
		}
	}
	return byGroup
}

// TestSeveralSegmentSources runs config/currents_to_segment.yaml with
// SEGMENT_WRITE_KEYS naming two app groups (and, for the events that carry
// no app group, their integrations) and a default key, against a stand-in
// holding the three sources: each call arrives under its own key only, and
// no key is printed. Without a default key, the third app group's events go
// to the dead letters, saying why.
func TestSeveralSegmentSources(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	byGroup := routingTree(t, bucket, 40, 700)
	keys := fmt.Sprintf("group-a=%s,group-b=%s,%s=%s,%s=%s", keyGroupA, keyGroupB,
		fixtures.IntegrationID(0), keyGroupA, fixtures.IntegrationID(1), keyGroupB)

	srv := segmentapi.StartT(t, keyDefault, segmentapi.WithWriteKeys(keyGroupA, keyGroupB))
	deadLetter := filepath.Join(dir, "dead.jsonl")
	env := append(pipelineEnv("file://"+bucket, srv, deadLetter, "BRAZE_INCLUDE_ANONYMOUS=true",
		"BRAZE_EVENT_TYPES=users.messages.email.Send,users.canvas.experimentstep.SplitEntry", "SEGMENT_WRITE_KEYS="+keys),
		"SEGMENT_WRITE_KEY="+keyDefault) // the last value of a variable wins
	p := runToEnd(t, env, "-c", "config/currents_to_segment.yaml")
	for key, group := range map[string]string{keyGroupA: "group-a", keyGroupB: "group-b", keyDefault: "group-c"} {
		checkUnder(t, srv, key, byGroup[group])
	}
	if dead := deadletter.Read(t, deadLetter, false); len(dead) != 0 {
		t.Fatalf("%d dead letters, want none: %+v", len(dead), dead[0])
	}
	checkNoKeyPrinted(t, p.logs(), keyGroupA, keyGroupB, keyDefault)
	echo, err := runConnect(t, repoRoot, env, "echo", "config/currents_to_segment.yaml")
	if err != nil || !strings.Contains(echo, "write_keys:") {
		t.Fatalf("echo: %v\n%s", err, lastLines(echo, 10))
	}
	checkNoKeyPrinted(t, echo, keyGroupA, keyGroupB, keyDefault)

	// No default: group-c has no key. (A run of its own: a checkpoint of its own.)
	srv.Reset()
	noDefault := filepath.Join(dir, "dead-no-default.jsonl")
	env = append(pipelineEnv("file://"+bucket, srv, noDefault, "BRAZE_INCLUDE_ANONYMOUS=true",
		"BRAZE_EVENT_TYPES=users.messages.email.Send,users.canvas.experimentstep.SplitEntry", "SEGMENT_WRITE_KEYS="+keys,
		"CURRENTS_CHECKPOINT_KEY=currents-connect/no-default.json"), "SEGMENT_WRITE_KEY=")
	p = runToEnd(t, env, "-c", "config/currents_to_segment.yaml")
	checkUnder(t, srv, keyGroupA, byGroup["group-a"])
	checkUnder(t, srv, keyGroupB, byGroup["group-b"])
	checkUnder(t, srv, keyDefault, nil)
	dead := deadletter.Read(t, noDefault, false)
	if len(dead) != len(byGroup["group-c"]) {
		t.Fatalf("%d dead letters, want group-c's %d events", len(dead), len(byGroup["group-c"]))
	}
	for _, d := range dead {
		if !strings.Contains(d.Error, "no Segment write key for route") || !strings.Contains(d.Error, "SEGMENT_WRITE") && !strings.Contains(d.Error, "write_keys") {
			t.Fatalf("dead letter %s says %q, want the missing write key and where to set it", d.ID, d.Error)
		}
	}
	checkNoKeyPrinted(t, p.logs(), keyGroupA, keyGroupB, keyDefault)
}

// checkUnder fails unless the calls accepted under key are exactly ids, once each.
func checkUnder(t *testing.T, srv *segmentapi.Server, key string, ids []string) {
	t.Helper()
	got := map[string]int{}
	for _, c := range srv.AcceptedUnder(key) {
		got[fmt.Sprint(c["messageId"])]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("event %s arrived %d times under key %s…, want once", id, got[id], key[:12])
		}
		delete(got, id)
	}
	if len(got) != 0 {
		t.Fatalf("%d calls under key %s… that belong to another source", len(got), key[:12])
	}
}

// checkNoKeyPrinted fails if out holds a key, plain or as a Basic auth header.
func checkNoKeyPrinted(t *testing.T, out string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if strings.Contains(out, k) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(k+":"))) {
			t.Fatalf("write key %s… printed", k[:12])
		}
	}
}
