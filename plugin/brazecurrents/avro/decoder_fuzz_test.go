package avro

import (
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// FuzzDecoderMatchesGoavro decodes one record, any schema goavro accepts
// and any bytes, with our compiled schema and with goavro: where goavro
// reads a value, ours must read the same value from the same bytes, and
// where ours does, goavro must too. Ours alone stops at its nesting and
// output limits, and at varints goavro is lax about. FuzzScanner covers the container and our two forms; this
// checks the schema compiler and the decoder against the reference.
// Run: go test ./plugin/brazecurrents/avro -run '^$' -fuzz FuzzDecoderMatchesGoavro
func FuzzDecoderMatchesGoavro(f *testing.F) {
	for _, seed := range []struct {
		schema string
		value  any
	}{
		{`{"type":"record","name":"dataexport.S3.inner.x.Y","fields":[{"name":"id","type":"string"},{"name":"time","type":"int"},` +
			`{"name":"u","type":["null","string"]},{"name":"l","type":["null",{"type":"array","items":["null","string"]}]},{"name":"f","type":"float"}]}`,
			map[string]any{"id": "a", "time": int32(-3), "u": map[string]any{"string": "b"}, "l": map[string]any{"array": []any{nil, map[string]any{"string": "c"}}}, "f": float32(0.1)}},
		{`{"type":"record","name":"a.L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]}]}`,
			map[string]any{"v": int64(1), "next": map[string]any{"a.L": map[string]any{"v": int64(2), "next": nil}}}},
		{`{"type":"record","name":"R","namespace":"a","fields":[{"name":"x","type":{"type":"record","name":"X","fields":[{"name":"s","type":"string"}]}},` +
			`{"name":"y","type":{"type":"record","name":"X","namespace":"b","fields":[{"name":"n","type":"int"}]}},{"name":"z","type":"X"},{"name":"w","type":"b.X"}]}`,
			map[string]any{"x": map[string]any{"s": "s"}, "y": map[string]any{"n": int32(1)}, "z": map[string]any{"s": "t"}, "w": map[string]any{"n": int32(2)}}},
		{`{"type":"record","name":"E","fields":[{"name":"e","type":{"type":"enum","name":"S","symbols":["A","B"]}},{"name":"f","type":{"type":"fixed","name":"F","size":3}},` +
			`{"name":"m","type":{"type":"map","values":["double","boolean","bytes"]}},{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}}]}`,
			map[string]any{"e": "B", "f": []byte{0, 1, 0xff}, "m": map[string]any{"k": map[string]any{"double": 1.5}, "j": map[string]any{"bytes": []byte("\xe9")}}, "t": time.UnixMilli(5)}},
		{`{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":"2"}},{"name":"g","type":["null",{"type":"fixed","name":"G","size":1e300}]}]}`,
			map[string]any{"f": []byte("ab"), "g": nil}},
	} {
		codec, err := goavro.NewCodec(seed.schema)
		if err != nil {
			f.Fatal(err)
		}
		data, err := codec.BinaryFromNative(nil, seed.value)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed.schema, data)
	}
	// goavro reserves a slice for a whole block's claimed count.
	goavro.MaxBlockCount, goavro.MaxBlockSize = 1<<12, 1<<16
	f.Fuzz(func(t *testing.T, schema string, data []byte) {
		p, _ := compileSchema([]byte(schema)) // a schema that is not a Currents one is still decoded
		if p == nil {
			return
		}
		d, _ := NewDecoder(p, Block{Count: 1, Data: data})
		ours, err := d.Value()
		if errors.Is(err, errDepth) || errors.Is(err, errOutputLimit) || d.Oversize() {
			return // goavro has no such limits
		}
		codec, cerr := goavro.NewCodec(schema)
		if cerr != nil {
			t.Fatalf("compiled a schema goavro refuses: %v", cerr)
		}
		theirs, rest, gerr := codec.NativeFromBinary(data)
		switch {
		case err != nil && gerr != nil:
		case errors.Is(err, errVarint) || err != nil && strings.Contains(err.Error(), "out of 32-bit range"):
			// goavro reads on past 10 bytes and cuts ints to 32 bits; Java
			// refuses both, as we do.
		case err != nil:
			t.Fatalf("ours failed where goavro read %#v: %v", theirs, err)
		case gerr != nil && strings.Contains(gerr.Error(), "duplicate key"):
			// goavro refuses a map with a key twice; Java keeps the last, as
			// we do.
		case gerr != nil:
			t.Fatalf("ours read %#v where goavro failed: %v", ours, gerr)
		case d.Pos() != len(data)-len(rest):
			t.Fatalf("ours read %d bytes, goavro %d", d.Pos(), len(data)-len(rest))
		case !same(p.root, ours, theirs):
			t.Fatalf("values differ:\n ours:   %#v\n goavro: %#v", ours, theirs)
		}
	})
}

// same reports whether ours, decoded as n, is what goavro's native value
// becomes in our form: unions unwrapped, ints int64, bytes and fixed one
// code point per byte, invalid UTF-8 replaced, NaN nil.
func same(n *node, ours, theirs any) bool {
	switch g := theirs.(type) {
	case time.Time, time.Duration, *big.Rat:
		return true // goavro's logical types; ours keeps the underlying value
	case nil:
		return ours == nil
	case bool:
		return ours == g
	case int32:
		return ours == int64(g)
	case int64:
		return ours == g
	case float32:
		return reflect.DeepEqual(ours, floatValue(float64(g), 32))
	case float64:
		return reflect.DeepEqual(ours, floatValue(g, 64))
	case []byte:
		return ours == latin1String(g)
	case string:
		return ours == validString(g)
	case []any:
		o, ok := ours.([]any)
		if !ok || n.kind != kindArray || len(o) != len(g) {
			return false
		}
		for i := range g {
			if !same(n.items, o[i], g[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		return sameMap(n, ours, g)
	}
	return false
}

func sameMap(n *node, ours any, g map[string]any) bool {
	switch n.kind {
	case kindUnion:
		for _, v := range g { // the one branch goavro names
			for _, b := range n.branches {
				if b.kind != kindNull && same(b, ours, v) {
					return true
				}
			}
		}
		return false
	case kindRecord:
		o, ok := ours.(map[string]any)
		if !ok || len(o) != len(g) {
			return false
		}
		for _, f := range n.fields {
			if !same(f.node, o[f.name], g[f.name]) {
				return false
			}
		}
		return true
	case kindMap:
		o, ok := ours.(map[string]any)
		if !ok {
			return false
		}
		keys := map[string]bool{}
		for k, v := range g {
			keys[validString(k)] = true
			if !same(n.items, o[validString(k)], v) {
				return false
			}
		}
		return len(keys) == len(o)
	}
	return false
}
