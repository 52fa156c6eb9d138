package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// summaryTree is a bucket of three event types, two objects of 15
// events each, about a fifth of them without external_user_id, plus one
// corrupt object; it returns the bucket's URL and its events by type.
func summaryTree(t *testing.T) (string, map[string][]map[string]any) {
	t.Helper()
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 15, Seed: 17,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send", "users.behaviors.Uninstall"}})
	putObject(t, url, 0, []byte("not an Avro file"))
	byType := map[string][]map[string]any{}
	for _, w := range written {
		byType[w.Spec.EventType] = append(byType[w.Spec.EventType], w.Records...)
	}
	return url, byType
}

// summaryLine is the one run summary among lines.
func summaryLine(t *testing.T, lines []string) string {
	t.Helper()
	var found []string
	for _, l := range lines {
		if strings.Contains(l, "Run done:") {
			found = append(found, l)
		}
	}
	if len(found) != 1 || !strings.Contains(found[0], "level=WARN") {
		t.Fatalf("want one run summary at level WARN, got %d:\n%s", len(found), strings.Join(lines, "\n"))
	}
	return found[0]
}

func anonymous(records []map[string]any) int {
	n := 0
	for _, r := range records {
		if r["external_user_id"] == nil {
			n++
		}
	}
	return n
}

// A one-pass run ends with one line saying what it read, and how many of
// the events had no external_user_id, which the mapping skips: counted
// alike for structured events and JSON text.
func TestInputOnePassEndsWithSummary(t *testing.T) {
	url, byType := summaryTree(t)
	anon := 0
	for _, records := range byType {
		anon += anonymous(records)
	}
	if anon == 0 || anon == 90 {
		t.Fatalf("the fixtures have %d of 90 events without external_user_id: the test needs some of each", anon)
	}
	for _, structured := range []bool{true, false} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			got := newCollected()
			line := summaryLine(t, runLogged(t, fmt.Sprintf("url: %s\nstructured: %v\nbatch_size: 4", url, structured), got.consume))
			want := fmt.Sprintf("Run done: 7 objects read (1 corrupt), 0 left for a later pass; 90 events read, 90 acknowledged; "+
				"%d had no external_user_id: the mapping skips those, as Braze's Segment connector does, unless include_anonymous "+
				"(BRAZE_INCLUDE_ANONYMOUS=true), and always the 0 with no user_id either (no user at all)", anon)
			byType := "events by type (3 types): users.behaviors.Uninstall 30, users.messages.email.Send 30, users.messages.sms.Send 30"
			if !strings.Contains(line, want) || !strings.Contains(line, byType) || got.total() != 90 {
				t.Fatalf("%d events delivered; summary\n%s\nwant\n%s\n%s", got.total(), line, want, byType)
			}
		})
	}
}

// Without nack replay, the events an output refused are counted apart, and
// their objects left for the next pass.
func TestInputSummaryCountsRefusedEvents(t *testing.T) {
	url, byType := summaryTree(t)
	refuse := func(_ context.Context, batch service.MessageBatch) error {
		if v, _ := batch[0].MetaGet(MetaEventType); v == "users.messages.sms.Send" {
			return errors.New("refused")
		}
		return nil
	}
	line := summaryLine(t, runLogged(t, "url: "+url+"\nauto_replay_nacks: false", refuse))
	want := fmt.Sprintf("Run done: 5 objects read (1 corrupt), 2 left for a later pass; 90 events read, 60 acknowledged, "+
		"30 not (read again on the next run); %d had no external_user_id", anonymous(byType["users.messages.sms.Send"])+
		anonymous(byType["users.messages.email.Send"])+anonymous(byType["users.behaviors.Uninstall"]))
	if !strings.Contains(line, want) {
		t.Fatalf("summary\n%s\nwant\n%s", line, want)
	}
}

// An empty external_user_id is counted as none, as the mapping tells it
// (and skips the event unless include_anonymous), and so is an empty user_id
// among those (no user at all: skipped in any case), in structured events
// and in JSON text alike; a message flagged with an error is no event.
func TestWithoutExternalUserIDCountsAnEmptyOne(t *testing.T) {
	batch := service.MessageBatch{
		service.NewMessage([]byte(`{"id":"a","external_user_id":""}`)),
		service.NewMessage([]byte(`{"id":"b","user_id":"u","external_user_id":null}`)),
		service.NewMessage([]byte(`{"id":"c","external_user_id":"x"}`)),
		service.NewMessage([]byte(`{"id":"d","external_user_id":"\"\""}`)),
		service.NewMessage([]byte(`{"id":"e","user_id":null,"external_user_id":null}`)),
		service.NewMessage([]byte(`{"id":"f","user_id":"","external_user_id":""}`)),
		// The field's name inside a value is no field (its quotes are escaped).
		service.NewMessage([]byte(`{"id":"g","message_body":"\"user_id\":\"x\"","external_user_id":null}`)),
	}
	for _, ev := range []map[string]any{{"external_user_id": ""}, {}, {"external_user_id": "x"},
		{"user_id": "u", "external_user_id": nil}, {"user_id": "", "external_user_id": ""}} {
		m := service.NewMessage(nil)
		m.SetStructured(ev)
		batch = append(batch, m)
	}
	// An oversize record, sent on flagged, holds no event: it is not counted.
	flagged := service.NewMessage(nil)
	flagged.SetStructured(map[string]any{"oversize_record": map[string]any{"record_index": 3}})
	flagged.SetError(errors.New("record 3: over the record limit"))
	batch = append(batch, flagged)
	if anonymous, noUser := withoutExternalUserID(batch); anonymous != 9 || noUser != 7 {
		t.Errorf("%d events without external_user_id, %d of them without user_id either; want 9 and 7", anonymous, noUser)
	}
}
