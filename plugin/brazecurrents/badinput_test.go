package brazecurrents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// expectDamage drains a scanner over data and checks that it delivered
// wantEvents events, then failed with an error naming the source and
// containing every fragment, and that the source was nacked, not acked.
func expectDamage(t *testing.T, data []byte, wantEvents int, fragments ...string) {
	t.Helper()
	s := newTestScanner(t, "", emailSendKey, bytes.NewReader(data))
	batches, err := s.drain()
	if got := len(bodies(t, batches)); got != wantEvents {
		t.Errorf("delivered %d events before the damage, want %d", got, wantEvents)
	}
	if err == nil {
		t.Fatal("no error for damaged input")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error %q does not match ErrCorrupt", err)
	}
	for _, f := range append([]string{emailSendKey}, fragments...) {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
	for _, b := range batches {
		_ = b.ack(context.Background(), nil)
	}
	_ = s.scan.Close(context.Background())
	if acks := s.ack.get(); len(acks) != 1 || acks[0] == nil {
		t.Errorf("source acks %v: a damaged file must not be acked as done", acks)
	}
}

// currentsSchema is a Currents-shaped record schema (an .inner. name, id and
// time) whose other fields (JSON, comma-separated) come first.
func currentsSchema(fields string) string {
	return `{"type":"record","name":"dataexport.S3.inner.x.Y","fields":[` + fields +
		`,{"name":"id","type":"string"},{"name":"time","type":"int"}]}`
}

// withIDTime gives rec the fields currentsSchema adds.
func withIDTime(rec map[string]any) map[string]any {
	rec["id"], rec["time"] = "x", int32(1)
	return rec
}

func TestScannerEmptyObjectIsSkippedWithWarning(t *testing.T) {
	s := newTestScanner(t, "", emailSendKey, bytes.NewReader(nil))
	batches, err := s.drain()
	if err != nil || len(batches) != 0 {
		t.Fatalf("empty object: %d batches, %v", len(batches), err)
	}
	_ = s.scan.Close(context.Background())
	if acks := s.ack.get(); len(acks) != 1 || acks[0] != nil {
		t.Fatalf("source acks %v: an empty object is done", acks)
	}
	if !strings.Contains(s.logs.String(), "level=WARN") || !strings.Contains(s.logs.String(), "empty object") {
		t.Fatalf("no warning logged: %q", s.logs.String())
	}
}

func TestScannerRejectsNonAvro(t *testing.T) {
	expectDamage(t, []byte(`{"id": "this is JSON, not Avro"}`), 0, "at byte 0", "not an Avro object container file")
	expectDamage(t, []byte("Ob"), 0, "at byte 0", "not an Avro")
}

func TestScannerRejectsUnknownCodec(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 1))
	data = bytes.Replace(data, []byte("\x14avro.codec\x08null"), []byte("\x14avro.codec\x08lzma"), 1)
	expectDamage(t, data, 0, `unsupported avro.codec "lzma"`)
}

func TestScannerRejectsInvalidSchema(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 1))
	data = bytes.Replace(data, []byte(`"record"`), []byte(`"recxrd"`), 1)
	expectDamage(t, data, 0, "invalid writer schema")
}

func TestScannerTruncatedFileKeepsEarlierEvents(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 5), mixedRecords(5, 5), mixedRecords(10, 5))
	// Cut in the middle of the last block.
	expectDamage(t, data[:len(data)-40], 10, "truncated block")
	// Cut inside the header.
	expectDamage(t, data[:30], 0, "truncated file")
	// Cut right after the last block's data, before its sync marker.
	expectDamage(t, data[:len(data)-8], 10, "sync marker")
}

func TestScannerBadSyncMarkerKeepsTheBlock(t *testing.T) {
	data := ocfFile(t, mixedSchema, "deflate", mixedRecords(0, 5), mixedRecords(5, 5), mixedRecords(10, 5))
	data = bytes.Clone(data)
	data[len(data)-1] ^= 0xff // last block's sync marker
	expectDamage(t, data, 15, "bad sync marker")
}

func TestScannerCorruptRecordKeepsEarlierRecords(t *testing.T) {
	schema := currentsSchema(`{"name":"n","type":"int"},{"name":"s","type":"string"}`)
	var records []any
	for i := range 6 {
		records = append(records, withIDTime(map[string]any{"n": int32(i), "s": "abc"}))
	}
	data := bytes.Clone(ocfFile(t, schema, "null", records))
	// Record 3 is n=3 (zig-zag 0x06), then the string: length 3 (0x06), abc.
	// Make its string length run past the block.
	i := bytes.Index(data, []byte{0x06, 0x06, 'a', 'b', 'c'})
	data[i+1] = 0x7e
	expectDamage(t, data, 3, "record 3", "string length")
}

func TestScannerReadErrorIsNotCorruption(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 5), mixedRecords(5, 5))
	r := io.MultiReader(bytes.NewReader(data[:len(data)-30]), errReader{errors.New("connection reset")})
	s := newTestScanner(t, "", emailSendKey, r)
	batches, err := s.drain()
	if err == nil || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("read failure reported as %v", err)
	}
	if got := len(bodies(t, batches)); got != 5 {
		t.Fatalf("%d events delivered before the read error, want 5", got)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestScannerEscapesStringsAsValidJSON(t *testing.T) {
	schema := currentsSchema(`{"name":"s","type":"string"}`)
	values := []string{"plain", `quote " and \ backslash`, "new\nline\ttab\r", "\x00\x1f ctl", "Zoë 🚀 <&>", "\u2028\u2029", "bad \xff\xfe utf8"}
	var records []any
	for _, v := range values {
		records = append(records, withIDTime(map[string]any{"s": v}))
	}
	batches, err := newTestScanner(t, "", "f.avro", bytes.NewReader(ocfFile(t, schema, "null", records))).drain()
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range bodies(t, batches) {
		var got struct{ S string }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("record %d is not valid JSON: %s: %v", i, body, err)
		}
		// The same as encoding/json: each invalid byte becomes U+FFFD.
		var want string
		encoded, _ := json.Marshal(values[i])
		_ = json.Unmarshal(encoded, &want)
		if got.S != want {
			t.Errorf("record %d: got %q, want %q", i, got.S, want)
		}
	}
}
