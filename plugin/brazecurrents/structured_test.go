package brazecurrents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// decodeModes decodes data once as JSON text and once structured, returning
// each mode's events as Go values (numbers normalised to int64 or float64)
// and its final error.
func decodeModes(t testing.TB, name string, data []byte) (text, structured []any, textErr, structErr error) {
	t.Helper()
	text, textErr = decodeValues(t, "structured: false", name, data)
	structured, structErr = decodeValues(t, "structured: true", name, data)
	return
}

func decodeValues(t testing.TB, conf, name string, data []byte) ([]any, error) {
	t.Helper()
	s := newTestScanner(t, conf+"\nbatch_size: 7", name, bytes.NewReader(data))
	defer s.scan.Close(context.Background())
	var out []any
	for {
		batch, ack, err := s.scan.NextBatch(context.Background())
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		for _, m := range batch {
			var v any
			if strings.HasPrefix(conf, "structured: true") {
				if v, err = m.AsStructured(); err != nil {
					t.Fatal(err)
				}
				raw, _ := m.AsBytes() // what an output writes
				if !json.Valid(raw) {
					t.Fatalf("structured event serialises to invalid JSON: %q", raw)
				}
			} else {
				raw, _ := m.AsBytes()
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.UseNumber()
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("invalid JSON emitted: %q", raw)
				}
			}
			out = append(out, normalise(v))
		}
		_ = ack(context.Background(), nil)
	}
}

// normalise makes numbers comparable across modes: JSON text writes a
// double 131 as 131, which parses as an integer.
func normalise(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return normalise(f)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalise(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e)
		}
		return out
	}
	return v
}

// outputLimitError is the decoder's error for item counts that would make
// more output than a block may.
const outputLimitError = "decoded output would exceed the limit for its block size"

// checkModesAgree fails unless both modes give the same events and errors.
func checkModesAgree(t testing.TB, name string, data []byte) {
	t.Helper()
	text, structured, textErr, structErr := decodeModes(t, name, data)
	if strings.Contains(fmt.Sprint(textErr, structErr), outputLimitError) {
		return // the modes bound hostile item counts by different measures
	}
	if (textErr == nil) != (structErr == nil) || (textErr != nil && textErr.Error() != structErr.Error()) {
		t.Fatalf("errors differ:\n text:       %v\n structured: %v", textErr, structErr)
	}
	if len(text) != len(structured) {
		t.Fatalf("%d events as text, %d structured", len(text), len(structured))
	}
	for i := range text {
		if !reflect.DeepEqual(text[i], structured[i]) {
			t.Fatalf("event %d differs:\n text:       %#v\n structured: %#v", i, text[i], structured[i])
		}
	}
}

func TestStructuredMatchesJSONText(t *testing.T) {
	for _, codec := range []string{"null", "deflate", "snappy"} {
		t.Run(codec, func(t *testing.T) {
			checkModesAgree(t, emailSendKey, ocfFile(t, mixedSchema, codec, mixedRecords(0, 5), mixedRecords(5, 3)))
		})
	}
	t.Run("every Avro type", func(t *testing.T) {
		schema := currentsSchema(`{"name":"m","type":{"type":"map","values":"double"}},` +
			`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"f","type":{"type":"fixed","name":"F","size":2}},` +
			`{"name":"b","type":"bytes"},{"name":"s","type":"string"},{"name":"fl","type":"float"},{"name":"d","type":"double"},` +
			`{"name":"big","type":"float"},{"name":"nan","type":"double"},{"name":"nested","type":{"type":"array","items":{"type":"map","values":["null","long"]}}}`)
		rec := withIDTime(map[string]any{"m": map[string]any{"k": 1.5, "z": math.Copysign(0, -1)}, "e": "B", "f": []byte{1, 0xff}, "b": []byte("x\x00\xe9"),
			"s": "caf\xc3\xa9 \xff\xfe \u2028 \"q\" <a>", "fl": float32(0.1), "d": 1e-7, "big": float32(3.4e38),
			"nan": math.NaN(), "nested": []any{map[string]any{"a": map[string]any{"long": int64(1) << 60}, "b": nil}}})
		checkModesAgree(t, emailSendKey, ocfFile(t, schema, "null", []any{rec}))
	})
	t.Run("damaged file", func(t *testing.T) {
		data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 5), mixedRecords(5, 5))
		checkModesAgree(t, emailSendKey, data[:len(data)-40])
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0xff
		checkModesAgree(t, emailSendKey, bad)
	})
}
