package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/deadletter"
)

// TestCustomHTTPDeadLettersMalformedEvents: a malformed event of a request
// goes to the dead letter file, as Braze sent it, with the reason and the
// request, and the request's good events to Segment; the request gets 200
// once both are done. It got 400: Braze re-sent each event alone, dropping
// for good the one answered 400 again.
func TestCustomHTTPDeadLettersMalformedEvents(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	var good []string
	events := namedEvents(t, "users.messages.email.Open", 4, 67)
	for _, r := range events {
		var top struct{ Events []json.RawMessage }
		if err := json.Unmarshal(customHTTPBody(t, "users.messages.email.Open", []map[string]any{r}), &top); err != nil {
			t.Fatal(err)
		}
		good = append(good, string(top.Events[0]))
	}
	malformed := []struct{ raw, reason, eventType string }{
		{`{"event_type": "users.messages.email.Open", "id": "m-1", "time": 1764590400, "properties": "oops", "user": {"external_user_id": "u-1"}}`,
			`event 1 (id "m-1"): properties is a JSON string, not an object`, "users.messages.email.Open"},
		{`"users.messages.email.Open"`, "event 0: a JSON string, not an object", ""},
		{`{"id": "m-3", "time": 1}`, `event 1 (id "m-3"): no event_type`, ""},
		{`{"event_type": "users.messages.email.Open", "id": "m-4", "time": 1764590400, "user": {"external_user_id": "u-1", "external_user_id": "u-2"}}`,
			`event 3 (id "m-4"): the key "external_user_id" appears twice in user`, "users.messages.email.Open"},
	}
	bodies := []string{
		`{"events": [` + good[0] + `, ` + malformed[0].raw + `, ` + good[1] + `]}`,
		`{"events": [` + malformed[1].raw + `, ` + malformed[2].raw + `, ` + good[2] + `, ` + malformed[3].raw + `, ` + good[3] + `]}`,
	}
	for i, body := range bodies {
		if code := p.postBytes("Bearer braze-token", []byte(body)); code != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200\n%s", i+1, code, lastLines(p.proc.logs(), 30))
		}
	}
	p.checkDelivered(events) // already there when 200 came back
	if n := p.srv.UniqueMessageIDs(); n != len(events) {
		t.Fatalf("%d calls in Segment, want the %d good events'", n, len(events))
	}
	letters := deadletter.Read(t, p.deadLetters, false)
	if len(letters) != len(malformed) {
		t.Fatalf("%d dead letters, want the %d malformed events: %+v", len(letters), len(malformed), letters)
	}
	for i, m := range malformed {
		l := letters[i]
		request := "1"
		if i > 0 {
			request = "2"
		}
		var got, want any
		if err := json.Unmarshal([]byte(l.Message), &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(m.raw), &want)
		if l.Error != m.reason || l.EventType != m.eventType || !strings.HasPrefix(l.Source, "http request "+request+" from 127.0.0.1:") || !reflect.DeepEqual(got, want) {
			t.Errorf("dead letter %d: %+v\nwant error %q, event type %q, source http request %s, message %s", i, l, m.reason, m.eventType, request, m.raw)
		}
		if !strings.Contains(p.proc.logs(), strings.ReplaceAll(m.reason, `"`, `\"`)+` (sent on as an error)`) {
			t.Errorf("no line naming %q (the first a warning, the others at debug level):\n%s", m.reason, lastLines(p.proc.logs(), 30))
		}
	}
	for _, c := range []struct {
		name, matchers string
		want           float64
	}{
		{"braze_currents_http_events_malformed", "", 4},
		{"braze_currents_http_events_received", "", 8},
		{"currents_events_mapped", "", 4},
		{"currents_events_unmappable", "", 4},
		{"currents_dead_letters", "", 4},
		{"braze_currents_http_requests", `status="200"`, 2},
	} {
		if got := p.metric(c.name, c.matchers); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.matchers, got, c.want)
		}
	}
}

// TestCustomHTTPDeadLettersATooDeepEvent: an event nested deeper than the
// 10,000 levels JSON is read to goes to the dead letter file alone, its
// message its text as a JSON string (Connect reads no JSON so deep), and the
// request's good events to Segment, with 200. The whole request got 400.
func TestCustomHTTPDeadLettersATooDeepEvent(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	events := namedEvents(t, "users.messages.email.Open", 2, 68)
	var good []string
	for _, r := range events {
		var top struct{ Events []json.RawMessage }
		if err := json.Unmarshal(customHTTPBody(t, "users.messages.email.Open", []map[string]any{r}), &top); err != nil {
			t.Fatal(err)
		}
		good = append(good, string(top.Events[0]))
	}
	deep := `{"event_type": "users.messages.email.Open", "id": "deep-1", "time": 1764590400, "properties": {"x": ` +
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}}`
	if code := p.postBytes("Bearer braze-token", []byte(`{"events": [`+good[0]+`, `+deep+`, `+good[1]+`]}`)); code != http.StatusOK {
		t.Fatalf("status %d, want 200\n%s", code, lastLines(p.proc.logs(), 30))
	}
	p.checkDelivered(events)
	letters := deadletter.Read(t, p.deadLetters, false)
	var text string
	if len(letters) != 1 || json.Unmarshal([]byte(letters[0].Message), &text) != nil || text != deep ||
		!strings.HasPrefix(letters[0].Error, `event 1 (id "deep-1"): nested deeper than the 10000 levels`) || letters[0].EventType != "users.messages.email.Open" {
		t.Fatalf("dead letters: %.300v; want the deep event alone, as its text", letters)
	}
}

// TestCustomHTTPLongEventTypesCountAsOther: a malformed event keeps its
// event_type, and a body may hold one of megabytes. The shipped pipeline's
// counters gave each of the first 64 such types a series of its own, which
// held its bytes for good and printed them at every scrape: a few requests
// made /metrics megabytes long. They count under other.
func TestCustomHTTPLongEventTypesCountAsOther(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	const requests = 4
	for i := range requests {
		long := fmt.Sprintf("users.%d.%s", i, strings.Repeat("x", 1<<20))
		body := `{"events": [{"event_type": "` + long + `", "id": "long-` + strconv.Itoa(i) + `", "time": 1764590400, "properties": "oops"}]}`
		if code := p.postBytes("Bearer braze-token", []byte(body)); code != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200\n%s", i+1, code, lastLines(p.proc.logs(), 30))
		}
	}
	code, text := httpGet(t, "http://"+p.metrics+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	if len(text) > 256<<10 {
		t.Errorf("/metrics is %d bytes, want under 256 KiB", len(text))
	}
	s, err := parseScrape(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"currents_events_unmappable", "currents_dead_letters"} {
		if got := s.sum(name, `event_type="other"`); got != requests {
			t.Errorf("%s{event_type=\"other\"} = %v, want %d", name, got, requests)
		}
	}
}
