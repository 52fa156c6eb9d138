package segment

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	segjson "github.com/segmentio/encoding/json"
)

// appendJSON must write what segjson.Append writes, byte for byte: dry runs
// print the bodies, and a call's JSON decides its derived messageId. Maps
// here have one key each, so that the two agree on the order.
func TestAppendJSONAsSegjson(t *testing.T) {
	for name, v := range map[string]any{
		"string":        "plain",
		"escapes":       "a\"b\\c\nd\te\x01f<g>h&i\u2028j\u2029k\xffl é 😀",
		"empty string":  "",
		"long ascii":    "0123456789abcdefghijklmnopqrstuvwxyz",
		"int64":         int64(-9007199254740993),
		"float64":       3.25,
		"large float":   1e21,
		"negative zero": math.Copysign(0, -1),
		"uint64":        uint64(math.MaxUint64),
		"int":           42,
		"bools":         []any{true, false},
		"null":          nil,
		"nil map":       map[string]any(nil),
		"nil array":     []any(nil),
		"empty map":     map[string]any{},
		"empty array":   []any{},
		"bytes":         []byte("raw <bytes>"),
		"time":          time.Date(2026, 11, 1, 10, 7, 21, 5, time.UTC),
		"number":        json.Number("12.50"),
		"nested":        map[string]any{"k<&>\n": []any{map[string]any{"x": []any{int64(1), "y", nil, 2.5}}, []any{}}},
		"map of string": map[string]string{"k": "v"},
	} {
		want, wantErr := segjson.Append(nil, v, segjson.EscapeHTML)
		got, err := appendJSON(nil, v, segjson.EscapeHTML)
		if (err != nil) != (wantErr != nil) || string(got) != string(want) {
			t.Errorf("%s: appendJSON gave %q (error %v), segjson %q (error %v)", name, got, err, want, wantErr)
		}
	}
}

// A value JSON cannot carry fails as it does in segjson, deep in a call.
func TestAppendJSONRefusesWhatSegjsonRefuses(t *testing.T) {
	v := map[string]any{"properties": map[string]any{"price": []any{math.Inf(1)}}}
	if _, err := appendJSON(nil, v, segjson.EscapeHTML); err == nil {
		t.Fatal("an infinite number was encoded")
	}
}

// Keys keep their order from segjson when sorted (dry runs), and several keys
// come out as an object that decodes to the value given.
func TestAppendJSONKeys(t *testing.T) {
	v := map[string]any{"b": int64(1), "a": map[string]any{"d": "x", "c": []any{true}}, "é": nil}
	sorted, err := appendJSON(nil, v, segjson.EscapeHTML|segjson.SortMapKeys)
	if err != nil || string(sorted) != `{"a":{"c":[true],"d":"x"},"b":1,"é":null}` {
		t.Fatalf("sorted: %s (%v)", sorted, err)
	}
	unsorted, err := appendJSON(nil, v, segjson.EscapeHTML)
	if err != nil {
		t.Fatal(err)
	}
	var a any
	if err := json.Unmarshal(unsorted, &a); err != nil {
		t.Fatalf("%s: %v", unsorted, err)
	}
	if ja, _ := json.Marshal(a); string(ja) != string(sorted) {
		t.Errorf("unsorted %s is not the same object as %s", unsorted, sorted)
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\x00\x1f\"\\", "\xff\xfe", "\u2028 é 😀 long enough to scan"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := map[string]any{s: []any{s, map[string]any{"k": s}, int64(len(s))}}
		want, wantErr := segjson.Append(nil, v, segjson.EscapeHTML)
		got, err := appendJSON(nil, v, segjson.EscapeHTML)
		if (err != nil) != (wantErr != nil) || string(got) != string(want) {
			t.Fatalf("appendJSON gave %q (error %v), segjson %q (error %v)", got, err, want, wantErr)
		}
	})
}
