package brazecurrents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// referenceEvent is an event as encoding/json reads it (UseNumber), its
// numbers then converted and properties and user moved to the top level:
// the decoder's oracle.
func referenceEvent(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a JSON %s, not an object", kindName(jsontext.Value(raw).Kind()))
	}
	if t, ok := obj["event_type"].(string); !ok || t == "" {
		return nil, errors.New("no event_type")
	}
	record := map[string]any{}
	for k, v := range obj {
		if k != "event_type" && k != "properties" && k != "user" {
			record[k] = referenceNumbers(v)
		}
	}
	for _, part := range flattenedParts {
		inner, ok := obj[part].(map[string]any)
		if !ok {
			if obj[part] == nil {
				continue
			}
			return nil, fmt.Errorf("%s is a JSON %s, not an object", part, referenceKind(obj[part]))
		}
		for k, v := range inner {
			if _, taken := record[k]; taken {
				return nil, fmt.Errorf("%s.%s collides with a field of the same name", part, k)
			}
			record[k] = referenceNumbers(v)
		}
	}
	return record, nil
}

func referenceNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		if _, err := strconv.ParseInt(strings.TrimPrefix(string(t), "-"), 10, 0); errors.Is(err, strconv.ErrRange) {
			if _, err := strconv.ParseFloat(string(t), 64); err == nil {
				return t // an integer past int64: its digits
			}
		}
		if f, err := strconv.ParseFloat(string(t), 64); err == nil {
			return f
		}
		return string(t)
	case map[string]any:
		for k, x := range t {
			t[k] = referenceNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = referenceNumbers(x)
		}
	}
	return v
}

// checkEventDecoder fails t when the decoder reads raw, a valid JSON value,
// otherwise than encoding/json does.
func checkEventDecoder(t *testing.T, d *eventDecoder, raw []byte) {
	t.Helper()
	want, wantErr := referenceEvent(raw)
	got, err := d.eventOf(raw)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%s: error %v, encoding/json's %v", raw, err, wantErr)
	case err != nil && collisionPart(err) != collisionPart(wantErr):
		t.Fatalf("%s: error %q, encoding/json's flattening %q", raw, err, wantErr)
	case err != nil:
	case !reflect.DeepEqual(got.record, want):
		t.Fatalf("%s:\n got  %#v\n want %#v", raw, got.record, want)
	}
	v, err := d.any(raw)
	var w any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err != nil || dec.Decode(&w) != nil || !reflect.DeepEqual(v, referenceNumbers(w)) {
		t.Fatalf("%s: any %#v (%v), encoding/json's %#v", raw, v, err, w)
	}
}

// collisionPart is an error's text, but of a collision, where two members
// may both collide and the reference names either (Go's map order), only
// the part it is in.
func collisionPart(err error) string {
	msg := err.Error()
	if part, _, ok := strings.Cut(msg, "."); ok && strings.HasSuffix(msg, " collides with a field of the same name") {
		return part + " collides"
	}
	return msg
}

func referenceKind(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// TestEventDecoderMatchesEncodingJSON: strings with escapes, surrogates and
// invalid UTF-8, numbers at and past int64's and float64's ends, nesting,
// and each way an event is refused, read as encoding/json reads them.
func TestEventDecoderMatchesEncodingJSON(t *testing.T) {
	d := newEventDecoder()
	for _, raw := range []string{
		`{"event_type":"t","id":"a","time":1,"properties":{"x":[1,2.5,-0,1e3,"s",null,true,{}]},"user":{"user_id":"u"}}`,
		`{"event_type":"t","n":9223372036854775807,"m":-9223372036854775808,"o":9223372036854775808,"p":1e400,"q":-1e-400,"r":0.1}`,
		`{"event_type":"t","s":"a\"b\\c\/d\b\f\n\r\t\u00e9\u2028\ud83d\ude00","k\u0065y":1,"e":"","l":"\ud800","m":"\udc00x","u":"\u0000"}`,
		"{\"event_type\":\"t\",\"bad\":\"a\xffb\xc3\",\"\xfe\":1,\"ok\":\"h\u00e9\"}",
		`{"event_type":"t","deep":{"a":{"b":[[[{"c":[]}]]]}},"empty":{},"arr":[]}`,
		`{"properties":null,"user":null,"event_type":"t"}`,
		`{"user":{"a":1},"properties":{"b":2},"event_type":"t","c":3}`,
		`[1]`, `"s"`, `null`, `12`,
		`{"id":"x"}`, `{"event_type":""}`, `{"event_type":1}`, `{"event_type":null}`,
		`{"event_type":"t","properties":"s"}`, `{"event_type":"t","user":[1]}`, `{"event_type":"t","properties":7,"user":true}`,
		`{"event_type":"t","id":"a","properties":{"id":"b"}}`, `{"event_type":"t","properties":{"a":1},"user":{"a":2}}`,
		`{"properties":{"event_type":"x"},"event_type":"t"}`, `{"user":{"properties":1},"event_type":"t"}`,
		// As deep as the body's scan lets through (jsontext's 10,000 levels).
		`{"event_type":"t","deep":` + strings.Repeat(`[{"a":`, 4990) + `1` + strings.Repeat(`}]`, 4990) + `}`,
	} {
		checkEventDecoder(t, d, []byte(raw))
	}
}

// TestEventDecoderRefusals words each refusal as the error path shows it,
// the first that applies in this order: not an object, no event_type, then
// properties before user, each as not an object before a collision.
func TestEventDecoderRefusals(t *testing.T) {
	d := newEventDecoder()
	for raw, want := range map[string]string{
		`[1]`:                         "a JSON array, not an object",
		`{"id":"x","properties":"s"}`: "no event_type",
		`{"event_type":"t","properties":7,"user":1}`:                   "properties is a JSON number, not an object",
		`{"event_type":"t","user":"u","id":"a","properties":{"id":1}}`: "properties.id collides with a field of the same name",
		`{"event_type":"t","properties":{"a":1},"user":{"a":2}}`:       "user.a collides with a field of the same name",
		`{"event_type":"t","properties":{"a":1},"user":[]}`:            "user is a JSON array, not an object",
	} {
		if _, err := d.eventOf(jsontext.Value(raw)); fmt.Sprint(err) != want {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

// TestEventDecoderSharesNames: a request's events share the strings of the
// names they repeat, up to a bound, so that odd keys cannot grow the table.
func TestEventDecoderSharesNames(t *testing.T) {
	d := newEventDecoder()
	var buf bytes.Buffer
	for i := range maxSharedNames + 10 {
		buf.Reset()
		fmt.Fprintf(&buf, `{"event_type":"t","k%d":1,"shared":2}`, i)
		if _, err := d.eventOf(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.names) != maxSharedNames {
		t.Fatalf("%d names kept, want the bound %d", len(d.names), maxSharedNames)
	}
	a, _ := d.eventOf(jsontext.Value(`{"event_type":"t","shared":1}`))
	b, _ := d.eventOf(jsontext.Value(`{"event_type":"t","shared":2}`))
	for ka := range a.record {
		for kb := range b.record {
			if unsafe.StringData(ka) != unsafe.StringData(kb) {
				t.Fatal("two events' same name are two strings")
			}
		}
	}
}
