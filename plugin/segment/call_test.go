package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	segjson "github.com/segmentio/encoding/json"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Each of the six call types is read with its fields, checked by its
// analytics-go type, and keeps its messageId.
func TestParseCallTypes(t *testing.T) {
	for _, body := range []string{
		`{"type":"track","event":"Email Sent","userId":"u","messageId":"m1","timestamp":"2026-11-01T10:00:00Z","properties":{"a":1},"context":{"traits":{"email":"a@b.c"}}}`,
		`{"type":"identify","anonymousId":"a","messageId":"m2","traits":{"plan":"pro"}}`,
		`{"type":"page","userId":"u","name":"Home","messageId":"m3","properties":{"path":"/"}}`,
		`{"type":"screen","userId":"u","name":"Home","messageId":"m4"}`,
		`{"type":"group","userId":"u","groupId":"g","messageId":"m5","traits":{"n":1}}`,
		`{"type":"alias","userId":"u","previousId":"p","messageId":"m6"}`,
	} {
		c, wire, err := parseCall([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var want struct{ Type, MessageID string }
		_ = json.Unmarshal([]byte(body), &want)
		if c.Type != want.Type || c.MessageID != want.MessageID || string(wire) != body {
			t.Fatalf("%s read as %s %q, wire %s", body, c.Type, c.MessageID, wire)
		}
	}
}

// The context and the timestamp go on the wire as the mapping wrote them.
func TestParseCallKeepsContextAndTimestamp(t *testing.T) {
	body := `{"type":"track","event":"E","anonymousId":"a","timestamp":"2026-11-01T10:00:00.5Z",
	  "context":{"traits":{"email":"x@y.z"},"device":{"model":"Pixel"}}}`
	var v any
	_ = json.Unmarshal([]byte(body), &v)
	_, fromBytes, err := parseCall([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	_, fromValue, err := structuredCall(v, func() ([]byte, error) { return []byte(body), nil }, nil, segjson.EscapeHTML|segjson.SortMapKeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{fromBytes, fromValue} {
		for _, want := range []string{`"timestamp":"2026-11-01T10:00:00.5Z"`, `"traits":{"email":"x@y.z"}`, `"device":{"model":"Pixel"}`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s lacks %s", out, want)
			}
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
		`{"type":"track","event":"E","userId":"u"} {"type":"track"}`:  "data after the JSON object",
		`{"type":"track","event":"E","userId":"u","messageId":"` + strings.Repeat("x", 100) + `"}`: "at most 99",
	} {
		_, _, err := parseCall([]byte(body))
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: error %v, want one containing %q", body, err, reason)
		}
	}
}

// A call sent as JSON text goes on the wire as it is, so it must be read as
// Segment reads it. Nothing may follow the object: a "]" there closed the
// request's batch array, and what came after it hid the next calls from
// Segment while they were acknowledged. Field names must be spelt as the
// spec spells them: Go matches them in any case, Segment does not, so a
// "MessageId" went without a messageId (no dedup on redelivery) and a
// "UserId" without its user.
func TestTextCallIsReadAsSegmentReadsIt(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	batch := trackBatch(5, 0, "x")
	batch[1] = service.NewMessage([]byte(`{"type":"track","event":"E","userId":"u","messageId":"m-1"}],"hidden":[0`))
	batch[3] = service.NewMessage([]byte(`{"type":"track","event":"E","anonymousId":"a","UserId":"u","MessageId":"m-3"}`))
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	for i, err := range errs {
		if bad := i == 1 || i == 3; bad != (err != nil) || (bad && !strings.Contains(err.Error(), "(invalid)")) {
			t.Errorf("call %d: error %v (bad call: %v)", i, err, bad)
		}
	}
	for _, id := range []string{"m-0", "m-2", "m-4"} {
		if got := srv.Count(id); got != 1 {
			t.Errorf("call %s acknowledged, accepted %d times", id, got)
		}
	}
	if got := srv.Stats().Accepted; got != 3 {
		t.Errorf("%d calls accepted, want the 3 good ones", got)
	}
}

// Segment's limit on messageId is under 100 characters, not bytes: a
// messageId of 60 accented letters (120 bytes) is Segment's to accept, not
// the dead letter's.
func TestMessageIDLimitCountsCharacters(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	id := strings.Repeat("é", 60)
	batch := service.MessageBatch{service.NewMessage(fmt.Appendf(nil, `{"type":"track","event":"E","userId":"u","messageId":%q}`, id))}
	if err := out.WriteBatch(context.Background(), batch); err != nil || srv.Count(id) != 1 {
		t.Fatalf("a messageId of 60 characters: %v, accepted %d times", err, srv.Count(id))
	}
}

func TestDerivedMessageIDIsStable(t *testing.T) {
	body := []byte(`{"type":"track","event":"E","userId":"u","properties":{"a":1}}`)
	a, _, _ := parseCall(body)
	b, _, _ := parseCall(append([]byte(nil), body...))
	c, _, _ := parseCall([]byte(`{"type":"track","event":"E","userId":"u","properties":{"a":2}}`))
	if a.MessageID == "" || a.MessageID != b.MessageID {
		t.Fatalf("redelivered call got ids %q and %q", a.MessageID, b.MessageID)
	}
	if a.MessageID == c.MessageID {
		t.Fatal("different calls share a derived id")
	}
	if len(a.MessageID) > maxMessageIDLen {
		t.Fatalf("derived id %q too long", a.MessageID)
	}
}

// A structured message (as a mapping leaves it) is read the same way as its
// JSON bytes: same call, same refusals.
func TestStructuredCallsMatchParsedCalls(t *testing.T) {
	bodies := []string{
		`{"type":"track","event":"E","userId":"u","messageId":"m1","timestamp":"2026-11-01T10:00:00Z","properties":{"a":1,"b":[1,2]},"context":{"traits":{"email":"x@y.z"}}}`,
		`{"type":"identify","anonymousId":"a","messageId":"m2","traits":{"plan":"pro"}}`,
		`{"type":"alias","userId":"u","previousId":"p","messageId":"m6"}`,
		`{"type":"track","event":"E","userId":"u","messageId":null,"properties":{"a":"<&>"}}`,
		`{"type":"track","event":"E","userId":"u","messageId":"","properties":{}}`,
		`{"type":"track","event":"E"}`,
		`{"type":"track","event":"E","userId":"u","colour":"red"}`,
		`{"type":"track","event":"E","userId":5}`,
		`{"type":"track","event":"E","userId":"u","properties":"flat"}`,
		`["not","an","object"]`,
	}
	for _, body := range bodies {
		for _, flags := range []segjson.AppendFlags{segjson.EscapeHTML | segjson.SortMapKeys, segjson.EscapeHTML} {
			checkStructuredMatchesParsed(t, body, flags)
		}
	}
}

func checkStructuredMatchesParsed(t *testing.T, body string, flags segjson.AppendFlags) {
	t.Helper()
	var v any
	_ = json.Unmarshal([]byte(body), &v)
	fromBytes, wireBytes, errBytes := parseCall([]byte(body))
	fromValue, wireValue, errValue := structuredCall(v, func() ([]byte, error) { return []byte(body), nil }, nil, flags)
	if (errBytes == nil) != (errValue == nil) {
		t.Fatalf("%s: bytes error %v, structured error %v", body, errBytes, errValue)
	}
	if errBytes != nil {
		return
	}
	if fromBytes.Type != fromValue.Type || fromBytes.MessageID != fromValue.MessageID {
		t.Fatalf("%s: read from bytes as %s %q, structured as %s %q", body, fromBytes.Type, fromBytes.MessageID, fromValue.Type, fromValue.MessageID)
	}
	// Both go on the wire as the same call, with its messageId.
	var wa, wb map[string]any
	if json.Unmarshal(wireBytes, &wa) != nil || json.Unmarshal(wireValue, &wb) != nil || !reflect.DeepEqual(wa, wb) {
		t.Fatalf("%s: wire forms differ:\n bytes      %s\n structured %s", body, wireBytes, wireValue)
	}
	if wa["messageId"] != fromBytes.MessageID || strings.Count(string(wireValue), `"messageId"`) != 1 {
		t.Fatalf("%s: wire %s, want one messageId %s", body, wireValue, fromBytes.MessageID)
	}
}

// A message a mapping failed on fails with the mapping's reason, without
// the wrappers Bloblang adds at each level of assignment.
func TestMessageCallGivesAnUpstreamErrorsPlainReason(t *testing.T) {
	msg := service.NewMessage([]byte(`{}`))
	msg.SetError(errors.New("failed assignment (line 2): failed assignment (line 1119): failed to resolve 'timestamp' value: users.messages.email.Open event x has no time"))
	_, _, err := messageCall(msg, nil, segjson.EscapeHTML|segjson.SortMapKeys)
	want := "segment: permanent failure (invalid): the message failed before the output: users.messages.email.Open event x has no time"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// A call over Segment's 32 KB fails alone, named by its messageId (the
// Currents event's id), so that the dead letter's reason says which event
// it was, whether the call came as JSON text or as a mapping's structure.
func TestTooLargeCallIsNamed(t *testing.T) {
	pad := strings.Repeat("x", 33<<10)
	text := service.NewMessage([]byte(`{"type":"track","event":"E","userId":"u","messageId":"evt-1","properties":{"p":"` + pad + `"}}`))
	structured := service.NewMessage(nil)
	structured.SetStructured(map[string]any{"type": "identify", "userId": "u", "messageId": "evt-2", "traits": map[string]any{"p": pad}})
	for id, msg := range map[string]*service.Message{"track call with messageId \"evt-1\"": text, "identify call with messageId \"evt-2\"": structured} {
		_, _, err := messageCall(msg, nil, segjson.EscapeHTML)
		var ce *CallError
		if !errors.As(err, &ce) || ce.Cause != CauseTooLarge || !ce.Permanent || !strings.Contains(ce.Detail, id) || !strings.Contains(ce.Detail, "32 KB") {
			t.Errorf("got %v, want a permanent too_large failure naming the %s", err, id)
		}
	}
}

// A call that fails for good is named in its error, by its type and
// messageId, beside what Segment said: that error is what Connect logs for
// the batch and what the dead letter keeps. Segment's answer to the request
// that was split down to the call names it by its index in that request
// ("call 0"), and an invalid call's reason names the field at fault alone,
// so the log line could not be matched with its call.
func TestFailedCallErrorNamesTheCall(t *testing.T) {
	api := segmentapi.StartT(t, testKey, segmentapi.WithMaxCallBytes(2000))
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, api.URL()))
	batch := trackBatch(4, 0, "x")
	batch[2] = service.NewMessage(fmt.Appendf(nil,
		`{"type":"identify","userId":"u","messageId":"too-big-for-segment","traits":{"pad":"%s"}}`, strings.Repeat("x", 3000)))
	invalid := service.NewMessage(nil)
	invalid.SetStructured(map[string]any{"type": "track", "event": "E", "messageId": "no-user"})
	unknown := service.NewMessage(nil)
	unknown.SetStructured(map[string]any{"type": "page", "name": "N", "userId": "u", "messageId": "colourful", "colour": "red"})
	batch = append(batch, invalid, unknown)
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	for i, want := range map[int][]string{
		2: {"(rejected): HTTP 400", `the identify call with messageId "too-big-for-segment"`, "over the 2000 byte limit"},
		4: {"(invalid)", `the track call with messageId "no-user"`, "UserId"},
		5: {"(invalid)", `the page call with messageId "colourful"`, `unknown field "colour"`},
	} {
		if errs[i] == nil {
			t.Fatalf("call %d: no error", i)
		}
		for _, w := range want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("call %d: error %q does not say %s", i, errs[i], w)
			}
		}
	}
	for _, i := range []int{0, 1, 3} {
		if errs[i] != nil {
			t.Errorf("good call %d failed: %v", i, errs[i])
		}
	}
}

// Dry runs print each call with its keys sorted, the same from run to run;
// live requests carry the same calls, keys in map order (which JSON ignores,
// and sorting them cost about a fifth of the output's CPU).
func TestDryRunSortsKeysLiveSendsTheSameCalls(t *testing.T) {
	structured := func() service.MessageBatch {
		var batch service.MessageBatch
		for i := range 20 {
			msg := service.NewMessage(nil)
			msg.SetStructuredMut(map[string]any{"type": "track", "event": "Email <Sent> & \u2028é", "userId": fmt.Sprintf("u%d", i),
				"messageId": fmt.Sprintf("m-%d", i), "timestamp": "2026-11-01T10:07:21Z",
				"properties": map[string]any{"z": "<b>", "y": int64(i), "x": []any{"a", nil}, "w": true, "v": "é", "u": nil,
					"t": map[string]any{"s": "1", "r": "2", "q": "3"}},
				"context": map[string]any{"traits": map[string]any{"email": "a@b.c", "name": "N"}, "ip": "0.0.0.0"}})
			batch = append(batch, msg)
		}
		return batch
	}
	dryRun := func() []string {
		lines := dryRunLines(t, "", structured())
		var body struct{ Batch []json.RawMessage }
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &body) != nil {
			t.Fatalf("dry run: want one batch body, got %q", lines)
		}
		var calls []string
		for _, raw := range body.Batch {
			calls = append(calls, string(raw))
		}
		return calls
	}
	first, second := dryRun(), dryRun()
	if !slices.Equal(first, second) || len(first) != 20 {
		t.Fatalf("two dry runs printed other calls:\n%v\n%v", first, second)
	}
	for _, raw := range first {
		var v any
		_ = json.Unmarshal([]byte(raw), &v)
		// encoding/json sorts keys and escapes HTML as the output does.
		if sorted, _ := json.Marshal(v); string(sorted) != raw {
			t.Fatalf("a dry-run call's keys are not sorted:\n got %s\nwant %s", raw, sorted)
		}
	}

	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	if err := out.WriteBatch(context.Background(), structured()); err != nil {
		t.Fatal(err)
	}
	live := srv.Accepted()
	if len(live) != len(first) {
		t.Fatalf("%d calls sent, want %d", len(live), len(first))
	}
	for i, raw := range first {
		// Re-encoded by encoding/json, keys sorted, the calls read the same.
		if sent, _ := json.Marshal(live[i]); string(sent) != raw {
			t.Errorf("call %d: sent %s, dry run printed %s", i, sent, raw)
		}
	}
}
