package e2e

// The per-type event counters of every shipped pipeline, read from a real
// /metrics scrape: what the input read, what the mapping mapped, filtered out
// and could not map, and the dead letters, for a known mix of events.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/queues"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// typeCounts is what the counters of one event type should read; what the
// input read is their sum, less the dead letters.
type typeCounts struct {
	mapped, filtered, unmappable, deadLetters int
}

// The counters the shipped configs keep per type, besides the input's.
var typeCounters = []string{"currents_events_mapped", "currents_events_unmappable", "currents_dead_letters"}

// checkTypeCounts checks, type by type, the input's counter read and the
// configs' counters against want, and that no counter has a type want
// lacks.
func checkTypeCounts(t *testing.T, s scrape, read string, want map[string]typeCounts) {
	t.Helper()
	for et, w := range want {
		l := fmt.Sprintf("event_type=%q", et)
		got := typeCounts{mapped: int(s.sum("currents_events_mapped", l)), unmappable: int(s.sum("currents_events_unmappable", l)),
			deadLetters: int(s.sum("currents_dead_letters", l))}
		got.filtered = int(s.sum(read, l)) - got.mapped - got.unmappable
		if got != w {
			t.Errorf("%s: mapped %d, filtered out %d (%s %v), unmappable %d, dead letters %d; want %d, %d (%d), %d, %d", et,
				got.mapped, got.filtered, read, s.sum(read, l), got.unmappable, got.deadLetters,
				w.mapped, w.filtered, w.mapped+w.filtered+w.unmappable, w.unmappable, w.deadLetters)
		}
	}
	for _, name := range append([]string{read}, typeCounters...) {
		for _, m := range s[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if _, ok := want[l.GetValue()]; l.GetName() == "event_type" && !ok {
					t.Errorf("%s{event_type=%q} = %v: a type the mix does not have", name, l.GetValue(), m.GetCounter().GetValue())
				}
			}
		}
	}
}

// countsMix writes to bucket the events of the bucket pipelines' tests: two
// types the mapping sends, one it filters out (outside Braze's 50; the
// pipeline must select it, as startWatchingPipeline does), and a file of
// events whose time (a long) is past the year 9999, which no Segment
// timestamp holds: the mapping cannot map them. It returns the files and
// what each type's counters should read with anonymous users included.
func countsMix(t *testing.T, bucket string, seed uint64) ([]fixtures.Written, map[string]typeCounts) {
	t.Helper()
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: seed,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Delivery", "users.behaviors.liveactivity.UpdateTokenChange"}})
	if err != nil {
		t.Fatal(err)
	}
	late := writeSpec(t, bucket, fixtures.FileSpec{EventType: "users.messages.email.Open", TimeLong: true, Records: 4, BlockRecords: 4,
		Seed: seed + 1, IntegrationID: written[0].Spec.IntegrationID})
	for _, r := range late.Records {
		r["time"] = int64(253402300800) // 10000-01-01T00:00:00Z
	}
	writeRecords(t, late)
	written = append(written, late)
	want := map[string]typeCounts{}
	for _, w := range written {
		c := want[w.Spec.EventType]
		for range w.Records {
			switch _, sent := fixtures.SegmentEvents()[w.Spec.EventType]; {
			case !sent:
				c.filtered++
			case w.Key == late.Key:
				c.unmappable++
				c.deadLetters++
			default:
				c.mapped++
			}
		}
		want[w.Spec.EventType] = c
	}
	return written, want
}

// TestNotificationCountsByType: the notification pipeline counts a known mix
// per type, one replica reading the objects a Pub/Sub subscription names.
func TestNotificationCountsByType(t *testing.T) {
	parallelCPU(t)
	dir := filepath.Join(t.TempDir(), "acme-currents") // the bucketId the notifications carry
	written, want := countsMix(t, dir, 31)
	ps := queues.StartPubSub(t)
	ps.CreateTopic(t, "created", "connect", 10*time.Second)
	srv := segmentapi.StartT(t, e2eWriteKey)
	admin := freeAddr(t)
	env := append([]string{"CURRENTS_URL=file://" + dir, "CURRENTS_NOTIFICATIONS=" + ps.SubscriptionURL("connect"),
		"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=" + srv.URL(), "CONNECT_HTTP_ADDRESS=" + admin,
		"DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true",
		"BRAZE_EVENT_TYPES=users.messages.*,users.behaviors.liveactivity.UpdateTokenChange"}, ps.Env()...)
	p := startConnect(t, repoRoot, env, nil, "-c", notificationsConfig)
	p.waitLines(1, 30*time.Second, "notifications from")
	for _, w := range written {
		ps.Publish(t, "created", []byte(`{"kind":"storage#object"}`), map[string]string{
			"bucketId": "acme-currents", "objectId": w.Key, "eventType": "OBJECT_FINALIZE"})
	}
	var s scrape
	waitUntil(t, "every object done in /metrics", func() bool {
		var err error
		s, err = tryScrape(admin)
		return err == nil && s.sum("braze_currents_objects_done", "") == float64(len(written))
	})
	checkTypeCounts(t, s, "braze_currents_events_read", want)
}

// TestCustomHTTPCountsByType: the Custom HTTP pipeline counts a known mix per
// type, posted in one request of several types: mapped events, anonymous
// ones and a type outside Braze's 50 (both filtered out by the defaults),
// and one without an id (unmappable, dead-lettered). The 200 answer means
// every event was delivered or dead-lettered, so counted.
func TestCustomHTTPCountsByType(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	named := namedEvents(t, "users.messages.email.Open", 6, 41)
	anonymous := namedEvents(t, "users.messages.email.Open", 3, 42)
	for _, r := range anonymous {
		delete(r, "external_user_id")
	}
	noID := named[5]
	delete(noID, "id")
	var events []any
	for _, part := range []struct {
		eventType string
		records   []map[string]any
	}{
		{"users.messages.email.Open", named[:3]},
		{"users.messages.email.Send", namedEvents(t, "users.messages.email.Send", 2, 43)},
		{"users.behaviors.liveactivity.UpdateTokenChange", namedEvents(t, "users.behaviors.liveactivity.UpdateTokenChange", 2, 44)},
		{"users.messages.email.Open", append(slices.Clone(anonymous), named[3:]...)},
	} {
		var body struct{ Events []any }
		if err := json.Unmarshal(customHTTPBody(t, part.eventType, part.records), &body); err != nil {
			t.Fatal(err)
		}
		events = append(events, body.Events...)
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	if code := p.postBytes("Bearer braze-token", body); code != http.StatusOK {
		t.Fatalf("status %d\n%s", code, lastLines(p.proc.logs(), 30))
	}
	checkTypeCounts(t, scrapeMetrics(t, p.metrics), "braze_currents_http_events_received", map[string]typeCounts{
		"users.messages.email.Open":                      {mapped: 5, filtered: 3, unmappable: 1, deadLetters: 1},
		"users.messages.email.Send":                      {mapped: 2},
		"users.behaviors.liveactivity.UpdateTokenChange": {filtered: 2},
	})
}
