package segment_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// summaryOf stops the stream and returns the one line the output closed
// with.
func summaryOf(t *testing.T, r *rig) string {
	t.Helper()
	r.stop(t, 5*time.Second)
	var found []string
	for _, l := range r.logs.all() {
		if strings.Contains(l, "Segment output closed:") {
			found = append(found, l)
		}
	}
	if len(found) != 1 || !strings.HasPrefix(found[0], "WARN ") {
		t.Fatalf("want one closing summary at level WARN, got %d:\n%s", len(found), strings.Join(r.logs.all(), "\n"))
	}
	return found[0]
}

func requireSummary(t *testing.T, line string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Fatalf("summary\n%s\nwant\n%s", line, w)
		}
	}
}

// The output closes with what it sent and what failed, by cause: with a
// fallback, the failed calls are the dead letters.
func TestStreamClosesWithSummary(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey, segmentapi.WithMaxCallBytes(2000))
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := startStream(t, map[string]any{"fallback": []any{
		map[string]any{"segment": segmentConf(api, nil)},
		map[string]any{"file": map[string]any{"path": dlq, "codec": "lines"}},
	}})
	batch := trackBatches(messageIDs("good", 20), 20, nil)[0]
	batch = append(batch,
		service.NewMessage([]byte(`{"type":"bogus","userId":"u1","messageId":"bad-type"}`)),
		service.NewMessage(trackCall("big", map[string]any{"pad": strings.Repeat("x", 3000)})), // over the stand-in's limit: 400
	)
	requireAcked(t, r.push(t, batch))

	requireSummary(t, summaryOf(t, r), "Segment output closed: 20 calls sent, 2 failed (invalid 1, rejected 1), 0 unconfirmed at shutdown.")
	if n, dead := api.UniqueMessageIDs(), len(deadletter.Read(t, dlq, false)); n != 20 || dead != 2 {
		t.Fatalf("%d calls accepted, %d dead letters; want 20 and 2", n, dead)
	}
}

func TestStreamSummaryInDryRun(t *testing.T) {
	r := startStream(t, map[string]any{"segment": map[string]any{
		"dry_run": true, "dry_run_path": filepath.Join(t.TempDir(), "bodies.jsonl"),
	}})
	requireAcked(t, r.push(t, trackBatches(messageIDs("dry", 7), 3, nil)...))
	requireSummary(t, summaryOf(t, r), "Segment output closed: 7 calls printed (dry run, nothing sent), 0 failed, 0 unconfirmed at shutdown.")
}

// An output that Segment left down says so as it closes: the calls it held
// were not sent.
func TestStreamSummarySaysSegmentWasDown(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	if err := api.Down(); err != nil {
		t.Fatal(err)
	}
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"unreachable_after": "1ms"})})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acks := r.pushAsync(ctx, trackBatches(messageIDs("down", 10), 10, nil)...)
	r.logs.waitFor(t, "accepted no request for", 1)
	line := summaryOf(t, r)
	cancel()
	awaitAcks(t, acks)
	requireSummary(t, line, "Segment output closed: 0 calls sent, 0 failed, 0 unconfirmed at shutdown.", "Segment was not taking calls (unreachable), so the calls held for it were not sent either")
}
