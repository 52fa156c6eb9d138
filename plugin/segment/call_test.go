package segment

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/segmentio/analytics-go/v3"
)

func TestParseCallTypes(t *testing.T) {
	for _, tc := range []struct {
		body string
		want any
	}{
		{`{"type":"track","event":"Email Sent","userId":"u","messageId":"m1","timestamp":"2026-11-01T10:00:00Z","properties":{"a":1},"context":{"traits":{"email":"a@b.c"}}}`, analytics.Track{}},
		{`{"type":"identify","anonymousId":"a","messageId":"m2","traits":{"plan":"pro"}}`, analytics.Identify{}},
		{`{"type":"page","userId":"u","name":"Home","messageId":"m3","properties":{"path":"/"}}`, analytics.Page{}},
		{`{"type":"screen","userId":"u","name":"Home","messageId":"m4"}`, analytics.Screen{}},
		{`{"type":"group","userId":"u","groupId":"g","messageId":"m5","traits":{"n":1}}`, analytics.Group{}},
		{`{"type":"alias","userId":"u","previousId":"p","messageId":"m6"}`, analytics.Alias{}},
	} {
		msg, _, err := parseCall([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got, want := typeName(msg), typeName(tc.want); got != want {
			t.Fatalf("%s parsed as %s, want %s", tc.body, got, want)
		}
		var id struct{ MessageID string }
		_ = json.Unmarshal([]byte(tc.body), &id)
		if messageID(msg) != id.MessageID {
			t.Fatalf("messageId %q, want %q", messageID(msg), id.MessageID)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case analytics.Track:
		return "track"
	case analytics.Identify:
		return "identify"
	case analytics.Page:
		return "page"
	case analytics.Screen:
		return "screen"
	case analytics.Group:
		return "group"
	case analytics.Alias:
		return "alias"
	}
	return "?"
}

func TestParseCallKeepsContextAndTimestamp(t *testing.T) {
	msg, _, err := parseCall([]byte(`{"type":"track","event":"E","anonymousId":"a","timestamp":"2026-11-01T10:00:00.5Z","context":{"traits":{"email":"x@y.z"},"device":{"model":"Pixel"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(msg)
	for _, want := range []string{`"timestamp":"2026-11-01T10:00:00.5Z"`, `"traits":{"email":"x@y.z"}`, `"device":{"model":"Pixel"}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
}

func TestParseCallRejectsInvalidCalls(t *testing.T) {
	for body, reason := range map[string]string{
		`not json`:                                                    "not a Segment call",
		`{"event":"E","userId":"u"}`:                                  "no type",
		`{"type":"bogus","userId":"u"}`:                               `"bogus" is not one of`,
		`{"type":"track","userId":"u"}`:                               "invalid track call",
		`{"type":"track","event":"E"}`:                                "invalid track call",
		`{"type":"track","event":"E","userId":"u","colour":"red"}`:    `unknown field "colour"`,
		`{"type":"track","event":"E","userId":"u","traits":{}}`:       "track calls have no traits field",
		`{"type":"identify","userId":"u","event":"E"}`:                "identify calls have no event field",
		`{"type":"group","userId":"u"}`:                               "invalid group call",
		`{"type":"alias","userId":"u"}`:                               "invalid alias call",
		`{"type":"track","event":"E","userId":"u","timestamp":"now"}`: "not ISO-8601",
		`{"type":"track","event":"E","userId":"u"} {"type":"track"}`:  "more than one JSON value",
		`{"type":"track","event":"E","userId":"u","messageId":"` + strings.Repeat("x", 100) + `"}`: "at most 99",
	} {
		_, _, err := parseCall([]byte(body))
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: error %v, want one containing %q", body, err, reason)
		}
	}
}

func TestDerivedMessageIDIsStable(t *testing.T) {
	body := []byte(`{"type":"track","event":"E","userId":"u","properties":{"a":1}}`)
	a, _, _ := parseCall(body)
	b, _, _ := parseCall(append([]byte(nil), body...))
	c, _, _ := parseCall([]byte(`{"type":"track","event":"E","userId":"u","properties":{"a":2}}`))
	if messageID(a) == "" || messageID(a) != messageID(b) {
		t.Fatalf("redelivered call got ids %q and %q", messageID(a), messageID(b))
	}
	if messageID(a) == messageID(c) {
		t.Fatal("different calls share a derived id")
	}
	if len(messageID(a)) > maxMessageIDLen {
		t.Fatalf("derived id %q too long", messageID(a))
	}
}

// A structured message (as a mapping leaves it) is read the same way as its
// JSON bytes: same call, same refusals.
func TestStructuredCallsMatchParsedCalls(t *testing.T) {
	bodies := []string{
		`{"type":"track","event":"E","userId":"u","messageId":"m1","timestamp":"2026-11-01T10:00:00Z","properties":{"a":1,"b":[1,2]},"context":{"traits":{"email":"x@y.z"}}}`,
		`{"type":"identify","anonymousId":"a","messageId":"m2","traits":{"plan":"pro"}}`,
		`{"type":"alias","userId":"u","previousId":"p","messageId":"m6"}`,
		`{"type":"track","event":"E"}`,
		`{"type":"track","event":"E","userId":"u","colour":"red"}`,
		`{"type":"track","event":"E","userId":5}`,
		`{"type":"track","event":"E","userId":"u","properties":"flat"}`,
		`["not","an","object"]`,
	}
	for _, body := range bodies {
		var v any
		_ = json.Unmarshal([]byte(body), &v)
		fromBytes, wireBytes, errBytes := parseCall([]byte(body))
		fromValue, wireValue, errValue := structuredCall(v, func() ([]byte, error) { return []byte(body), nil })
		if (errBytes == nil) != (errValue == nil) {
			t.Fatalf("%s: bytes error %v, structured error %v", body, errBytes, errValue)
		}
		if errBytes != nil {
			continue
		}
		a, _ := json.Marshal(fromBytes)
		b, _ := json.Marshal(fromValue)
		if string(a) != string(b) {
			t.Fatalf("%s:\n bytes      %s\n structured %s", body, a, b)
		}
		// Both go on the wire as the same call, with its messageId.
		var wa, wb map[string]any
		if json.Unmarshal(wireBytes, &wa) != nil || json.Unmarshal(wireValue, &wb) != nil || !reflect.DeepEqual(wa, wb) {
			t.Fatalf("%s: wire forms differ:\n bytes      %s\n structured %s", body, wireBytes, wireValue)
		}
		if wa["messageId"] != messageID(fromBytes) {
			t.Fatalf("%s: wire messageId %v, want %s", body, wa["messageId"], messageID(fromBytes))
		}
	}
}

// A message a mapping failed on fails with the mapping's reason, without
// the wrappers Bloblang adds at each level of assignment.
func TestMessageCallGivesAnUpstreamErrorsPlainReason(t *testing.T) {
	msg := service.NewMessage([]byte(`{}`))
	msg.SetError(errors.New("failed assignment (line 2): failed assignment (line 1119): failed to resolve 'anonymousId' value: users.messages.sms.InboundReceive event x has neither external_user_id nor user_id"))
	_, err := messageCall(msg)
	want := "segment: permanent failure (invalid): the message failed before the output: users.messages.sms.InboundReceive event x has neither external_user_id nor user_id"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
