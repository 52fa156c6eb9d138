package brazecurrents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// httpBody is what Currents' Custom HTTP connector POSTs for records in the
// storage shape.
func httpBody(t testing.TB, eventType string, records []any) []byte {
	t.Helper()
	plain := make([]map[string]any, 0, len(records))
	for _, v := range records {
		plain = append(plain, v.(map[string]any))
	}
	body, err := fixtures.CustomHTTPBody(eventType, plain)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestHTTPEventsMatchStorageRecords: for every event type, an event received
// over HTTP equals the same event read from a bucket by the structured
// decoder, so one mapping serves both inputs.
func TestHTTPEventsMatchStorageRecords(t *testing.T) {
	for i, eventType := range fixtures.EventTypes() {
		var buf bytes.Buffer
		if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: eventType, Records: 6, Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		stored, err := decodeValues(t, "structured: true", "currents/dataexport.prod-01.S3.integration.x/event_type="+eventType+"/date=2026-11-01-10/0/x.avro", buf.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", eventType, err)
		}
		events, err := parseHTTPEvents(httpBody(t, eventType, stored))
		if err != nil {
			t.Fatalf("%s: %v", eventType, err)
		}
		if len(events) != len(stored) {
			t.Fatalf("%s: %d events, want %d", eventType, len(events), len(stored))
		}
		for j, e := range events {
			if e.eventType != eventType {
				t.Fatalf("%s: event type %q", eventType, e.eventType)
			}
			if got := normalise(e.record); !reflect.DeepEqual(got, stored[j]) {
				t.Fatalf("%s event %d:\nover HTTP %v\nin bucket %v", eventType, j, got, stored[j])
			}
		}
	}
}

// TestParseHTTPEventsRefuses: a body nothing can be split out of is refused
// whole (the request is answered 400).
func TestParseHTTPEventsRefuses(t *testing.T) {
	for _, c := range []struct{ body, reason string }{
		{``, "not JSON"},
		{`hello`, "not JSON"},
		{`{"events": [`, "not JSON"},
		{`{"events": [{"event_type": "a"}, {"id": ]}`, "not JSON"},
		{`[]`, "a JSON array, not an object"},
		{`"events"`, "a JSON string"},
		{`{"foo": 1}`, `no "events" array`},
		{`{"events": null}`, `"events" is a JSON null`},
		{`{"events": {}}`, `"events" is a JSON object`},
		{`{"events": []} {}`, "more than one JSON value"},
		{`{"events": []} x`, "more than one JSON value"},
		{`{"events": [], "events": []}`, `the key "events" appears twice`},
		{`{"events": [{"event_type": "a"}], "\u0065vents": []}`, `the key "events" appears twice`},
		{`{"x": 1, "events": [], "x": 2}`, `the key "x" appears twice`},
		{`{"x": {"y": 1, "y": 2}, "events": []}`, `the key "y" appears twice in x`},
		{`{"events": [], "x": [{"z": {"y": 1, "y": 2}}]}`, `the key "y" appears twice in x.0.z`},
	} {
		events, err := parseHTTPEvents([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.reason) || events != nil {
			t.Errorf("%q: error %v, want one saying %q", c.body, err, c.reason)
		}
	}
}

// TestParseHTTPEventsNotJSONSaysSo: a body, or an "events" value, that
// only starts like a JSON literal is not JSON, and the 400 says so. Before,
// the reason went by its first byte alone: "notjson" was "a JSON null" and
// "tru" "a JSON boolean", which sends whoever reads Braze's log or ours
// looking for a null that is not there.
func TestParseHTTPEventsNotJSONSaysSo(t *testing.T) {
	for _, body := range []string{`notjson`, `nullx`, `tru`, `fals`, `1e`, `"open`, `{"events": nope}`, `{"events": tx}`} {
		_, err := parseHTTPEvents([]byte(body))
		if err == nil || !strings.Contains(err.Error(), "the body is not JSON") {
			t.Errorf("%q: error %v, want one saying the body is not JSON", body, err)
		}
	}
}

// TestParseHTTPEventsMalformed: a malformed event of a well-formed body is
// returned alone with its reason (naming its index and its id) and its own
// bytes as received; the others as usual. Refusing the body would have had
// Braze re-send each event alone and drop the malformed one for good.
func TestParseHTTPEventsMalformed(t *testing.T) {
	const good = `{"event_type": "a", "id": "g"}`
	for _, c := range []struct{ event, reason, eventType string }{
		{`1`, "event 1: a JSON number, not an object", ""},
		{`"users.messages.email.Open"`, "event 1: a JSON string, not an object", ""},
		{`null`, "event 1: a JSON null, not an object", ""},
		{`[{"event_type": "a"}]`, "event 1: a JSON array, not an object", ""},
		{`{"id": "x"}`, `event 1 (id "x"): no event_type`, ""},
		{`{"event_type": "", "id": "x"}`, `event 1 (id "x"): no event_type`, ""},
		{`{"event_type": 3}`, "event 1: no event_type", ""},
		{`{"event_type": "a", "id": "e7", "properties": {"id": "e8"}}`, `event 1 (id "e7"): properties.id collides with a field of the same name`, "a"},
		{`{"event_type": "a", "properties": "x"}`, "event 1: properties is a JSON string, not an object", "a"},
		{`{"event_type": "a", "user": []}`, "event 1: user is a JSON array, not an object", "a"},
		{`{"event_type": "a", "properties": {"x": 1}, "user": {"x": 1}}`, "event 1: user.x collides with a field of the same name", "a"},
		{`{"event_type": "a", "id": "1", "id": "2"}`, `event 1 (id "2"): the key "id" appears twice`, "a"},
		{`{"event_type": "a", "id": "i", "properties": {"x": 1, "x": 1}}`, `event 1 (id "i"): the key "x" appears twice in properties`, "a"},
		{`{"event_type": "a", "user": {"l": [{}, {"k": 1, "k": 2}]}}`, `event 1: the key "k" appears twice in user.l.1`, "a"},
		{`{"event_type": "a", "event_type": "b"}`, `event 1: the key "event_type" appears twice`, "b"},
		{`{"event_type": "a", "id": "` + strings.Repeat("x", 150) + `", "user": 1}`, `event 1 (id "` + strings.Repeat("x", 100) + `…"): user is a JSON number, not an object`, "a"},
	} {
		body := "{\"events\": [" + good + ",\n  " + c.event + " , " + good + "]}"
		events, err := parseHTTPEvents([]byte(body))
		if err != nil {
			t.Errorf("%s: the body was refused: %v", c.event, err)
			continue
		}
		if len(events) != 3 || events[0].err != nil || events[2].err != nil || events[0].record["id"] != "g" || events[2].record["id"] != "g" {
			t.Errorf("%s: the good events around it: %#v", c.event, events)
			continue
		}
		e := events[1]
		if e.err == nil || e.err.Error() != c.reason {
			t.Errorf("%s: error %v, want %q", c.event, e.err, c.reason)
		}
		if string(e.raw) != c.event || e.record != nil || e.eventType != c.eventType {
			t.Errorf("%s: raw %q, record %v, type %q; want the event's own bytes and type %q", c.event, e.raw, e.record, e.eventType, c.eventType)
		}
	}
}

func TestParseHTTPEventsValues(t *testing.T) {
	events, err := parseHTTPEvents([]byte(`{"events": [{"event_type": "users.behaviors.CustomEvent", "id": "e1", "time": 1764590400,
		"properties": {"name": "n", "custom_properties": {"n": 1.5, "big": 12345678901234567890, "list": [1, "a", null], "huge": 1e400}},
		"user": {"external_user_id": "u"}}], "extra": true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "e1", "time": int64(1764590400), "name": "n", "external_user_id": "u",
		"custom_properties": map[string]any{"n": 1.5, "big": json.Number("12345678901234567890"), "list": []any{int64(1), "a", nil}, "huge": "1e400"}}
	if len(events) != 1 || events[0].eventType != "users.behaviors.CustomEvent" || !reflect.DeepEqual(events[0].record, want) {
		t.Fatalf("got %#v", events)
	}
}

// FuzzParseHTTPEvents: no body makes the parser panic, and what it accepts
// has one event per element of the events array: each typed, read as
// encoding/json reads it, that serialises again, or malformed, with its index in
// its reason and its own bytes.
func FuzzParseHTTPEvents(f *testing.F) {
	f.Add([]byte(`{"events": [{"event_type": "users.messages.email.Open", "id": "a", "time": 1, "properties": {"x": [1, 2.5]}, "user": {"user_id": "u"}}]}`))
	f.Add([]byte(`{"events": []}`))
	f.Add([]byte(`{"events": [{"event_type": "t", "properties": null, "user": {"a": {"b": [{}]}}}]}`))
	f.Add([]byte(`{"events": [{"event_type": "t", "n": -9223372036854775809}]}`))
	f.Add([]byte(`{"events": [{"event_type": "t", "n": 18446744073709551615, "f": 1E2, "e": 1e400}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"events": [1, {"event_type": "t", "k": 1, "k": 2}, {"id": "x"}]}`))
	f.Add([]byte(`{"events": [{"event_type": "t"}, ` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `, {"event_type": "t", "id": "\"]"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := parseHTTPEvents(body)
		if err != nil {
			if events != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		var top struct{ Events []json.RawMessage }
		if err := json.Unmarshal(body, &top); err != nil {
			// but for events nested deeper than either reads, malformed (TestParseHTTPEventsTooDeep)
			if strings.Contains(err.Error(), "exceeded max depth") && slices.ContainsFunc(events, func(e httpEvent) bool {
				return e.err != nil && strings.Contains(e.err.Error(), "nested deeper than")
			}) {
				return
			}
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		// A body the scan found free of keys named twice skips each event's
		// own check: it must decide as that check does.
		scan, err := scanHTTPBody(body)
		if err != nil {
			t.Fatal(err)
		}
		scan.dupFree = false
		checked, err := decodeHTTPEvents(body, scan)
		if err != nil {
			t.Fatal(err)
		}
		for i := range events {
			if fmt.Sprint(events[i].err) != fmt.Sprint(checked[i].err) || !reflect.DeepEqual(events[i].record, checked[i].record) {
				t.Fatalf("event %d: %v, %v without its own check; %v, %v with it", i, events[i].err, events[i].record, checked[i].err, checked[i].record)
			}
		}
		if len(events) != len(top.Events) {
			t.Fatalf("%d events from an array of %d", len(events), len(top.Events))
		}
		for i, e := range events {
			if e.err != nil {
				if !strings.HasPrefix(e.err.Error(), fmt.Sprintf("event %d", i)) || e.record != nil || !bytes.Equal(e.raw, bytes.TrimSpace(top.Events[i])) {
					t.Fatalf("malformed event %d: %v, raw %q, record %v", i, e.err, e.raw, e.record)
				}
				continue
			}
			if e.eventType == "" {
				t.Fatal("an event without a type")
			}
			// As encoding/json reads it, flattened (http_decode_test.go).
			if want, err := referenceEvent(top.Events[i]); err != nil || !reflect.DeepEqual(e.record, want) {
				t.Fatalf("event %d: %#v, encoding/json's %#v (%v)", i, e.record, want, err)
			}
			if _, err := json.Marshal(e.record); err != nil {
				t.Fatalf("the record does not serialise: %v", err)
			}
		}
	})
}

// brazeSizedBody is a request as Braze sends them: 100 events (its batch
// size), ten of each of ten mapped event types, made by the fixtures.
func brazeSizedBody(b testing.TB) []byte {
	b.Helper()
	var events []json.RawMessage
	for i, eventType := range segmentEventTypes[:10] {
		var buf bytes.Buffer
		if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: eventType, Records: 10, Seed: uint64(i + 1)}); err != nil {
			b.Fatal(err)
		}
		stored, err := decodeValues(b, "structured: true", "currents/dataexport.prod-01.S3.integration.x/event_type="+eventType+"/date=2026-11-01-10/0/x.avro", buf.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		var top struct{ Events []json.RawMessage }
		if err := json.Unmarshal(httpBody(b, eventType, stored), &top); err != nil {
			b.Fatal(err)
		}
		events = append(events, top.Events...)
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkParseHTTPEvents: the cost of reading a request body into events,
// for a Braze-sized request and for a 1 MiB body of the smallest events.
func BenchmarkParseHTTPEvents(b *testing.B) {
	const tiny = `{"event_type":"a"}`
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"braze100", brazeSizedBody(b)},
		{"tiny1MiB", []byte(`{"events":[` + strings.Repeat(tiny+",", (1<<20)/(len(tiny)+1)) + tiny + `]}`)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseHTTPEvents(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
