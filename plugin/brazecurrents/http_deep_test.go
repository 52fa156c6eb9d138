package brazecurrents

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// nestedEvent is an event whose properties hold arrays nested so that the
// event is depth levels deep (itself and properties are two of them).
func nestedEvent(id string, depth int) string {
	return `{"event_type": "users.messages.email.Send", "id": "` + id + `", "time": 1, "properties": {"x": ` +
		strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}, "user": {"external_user_id": "u"}}`
}

// TestParseHTTPEventsTooDeep: an event nested deeper than JSON is read to
// (10,000 levels, the body's object and events array two of them) is
// malformed alone, its content its text as a JSON string; the other events,
// before and after it, are read as usual, and one just as deep as may be read
// is a good event. Before, the body was refused (400) for it: Braze would
// re-send each event alone and drop that one for good.
func TestParseHTTPEventsTooDeep(t *testing.T) {
	const good = `{"event_type": "a", "id": "g"}`
	deep1, deep3 := nestedEvent("deep-1", maxJSONDepth-1), `[`+nestedEvent("deep-3", maxJSONDepth)+`]`
	body := `{"events": [` + good + `, ` + deep1 + ",\n" + good + `,` + deep3 + ` , ` + nestedEvent("edge", maxJSONDepth-2) + `], "x": 1}`
	events, err := parseHTTPEvents([]byte(body))
	if err != nil {
		t.Fatalf("the body was refused: %v", err)
	}
	if len(events) != 5 {
		t.Fatalf("%d events, want 5", len(events))
	}
	for _, i := range []int{0, 2, 4} {
		if e := events[i]; e.err != nil || e.record == nil {
			t.Errorf("event %d: %v, want it read", i, e.err)
		}
	}
	if e := events[4]; len(e.record) != 4 || e.record["id"] != "edge" {
		t.Errorf("the event as deep as may be read: %v", e.record)
	}
	const reason = "nested deeper than the 10000 levels of arrays and objects JSON is read to (the request's object and events array are two of them)"
	for i, c := range map[int]struct{ raw, err, eventType string }{
		1: {deep1, `event 1 (id "deep-1"): ` + reason, "users.messages.email.Send"},
		3: {deep3, `event 3: ` + reason, ""},
	} {
		e := events[i]
		if e.err == nil || e.err.Error() != c.err || e.eventType != c.eventType || e.record != nil {
			t.Errorf("event %d: error %v, type %q, record %v; want %q, type %q", i, e.err, e.eventType, e.record, c.err, c.eventType)
		}
		if text, err := jsontext.AppendUnquote(nil, e.raw); err != nil || string(text) != c.raw {
			t.Errorf("event %d: content %.40q…, want its text as a JSON string (%v)", i, e.raw, err)
		}
	}
}

// TestParseHTTPEventsTooDeepRefused: what is too deep outside the events,
// or an event too deep that the body ends in, still refuses the body.
func TestParseHTTPEventsTooDeepRefused(t *testing.T) {
	deep := strings.Repeat("[", maxJSONDepth)
	for _, body := range []string{
		`{"x": ` + deep + strings.Repeat("]", maxJSONDepth) + `, "events": []}`,
		`{"events": [{"event_type": "a"}, ` + deep,
		`{"events": [` + deep + strings.Repeat("]", maxJSONDepth) + `, nope]}`,
	} {
		if events, err := parseHTTPEvents([]byte(body)); err == nil || !strings.Contains(err.Error(), "the body is not JSON") || events != nil {
			t.Errorf("%.40q…: %v, want the body refused as not JSON", body, err)
		}
	}
}

// TestHTTPInputSendsATooDeepEventOnAsAnError: over HTTP, the request holding
// an event too deep is answered 200 once its three events were handed over
// and acknowledged, the deep one flagged.
func TestHTTPInputSendsATooDeepEventOnAsAnError(t *testing.T) {
	url, deliveries, _ := startHTTPStream(t)
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`, `+nestedEvent("deep-1", 20000)+`, `+testEvent+`]}`)
	var d delivery
	select {
	case d = <-deliveries:
	case r := <-answer:
		t.Fatalf("answered %d %q without handing the events over", r.status, r.body)
	}
	if len(d.batch) != 3 || d.batch[0].GetError() != nil || d.batch[2].GetError() != nil {
		t.Fatalf("%d messages, want the request's 3, the first and last good", len(d.batch))
	}
	if err := d.batch[1].GetError(); err == nil || !strings.HasPrefix(err.Error(), `event 1 (id "deep-1"): nested deeper than`) {
		t.Fatalf("the deep event's error: %v", err)
	}
	d.ack <- nil
	if r := <-answer; r.status != http.StatusOK || !strings.Contains(r.body, "1 of them malformed") {
		t.Fatalf("answered %d %q, want 200 saying one was malformed", r.status, r.body)
	}
}
