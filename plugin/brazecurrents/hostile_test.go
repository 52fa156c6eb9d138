package brazecurrents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// hostile builds an object with one of the fixtures' hostile writers.
func hostile(t testing.TB, write func(io.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var blockLimit = fmt.Sprintf("over the %d-byte block limit", avro.MaxBlockBytes)

func TestScannerStopsDecompressionBombsAtTheBlockLimit(t *testing.T) {
	for name, data := range map[string][]byte{
		"deflate":   hostile(t, func(w io.Writer) error { return fixtures.DeflateBomb(w, 1024) }),
		"zstandard": hostile(t, func(w io.Writer) error { return fixtures.ZstdBomb(w, 1024) }),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			expectDamage(t, data, 0, name+" block", fmt.Sprintf("decompresses beyond the %d-byte block limit", avro.MaxBlockBytes))
			runtime.ReadMemStats(&after)
			// A 1 GiB claim costs the limit (grown by doubling) plus a constant.
			if got := after.TotalAlloc - before.TotalAlloc; got > 3*avro.MaxBlockBytes {
				t.Fatalf("decoding a %d-byte bomb allocated %d MiB", len(data), got>>20)
			}
		})
	}
}

func TestScannerRejectsLyingSnappyBlocks(t *testing.T) {
	// A claim over the limit is refused before anything is allocated.
	expectDamage(t, hostile(t, func(w io.Writer) error { return fixtures.SnappyLiar(w, 1<<30, 1<<20) }), 0,
		"snappy block", "claims 1073741824 decompressed bytes")
	// A claim within the limit, from a body that does not hold it.
	expectDamage(t, hostile(t, func(w io.Writer) error { return fixtures.SnappyLiar(w, 4<<20, 200<<10) }), 0,
		"snappy block", "corrupt input")
}

func TestScannerRefusesBlocksOverTheLimit(t *testing.T) {
	// Uncompressed, the declared size is refused before the block is read.
	expectDamage(t, hostile(t, func(w io.Writer) error { return fixtures.GiantRecords(w, "null", 1, avro.MaxBlockBytes) }), 0,
		"block of 1 records declares", blockLimit)
	// A 50 MB record, compressed, stops inflating at the limit.
	expectDamage(t, hostile(t, func(w io.Writer) error { return fixtures.GiantRecords(w, "deflate", 1, 50<<20) }), 0,
		"deflate block", "decompresses beyond")
}

func TestScannerRefusesHeadersOverTheLimit(t *testing.T) {
	schema := strings.Replace(mixedSchema, `"owner": "someone"`, `"doc": "`+strings.Repeat("x", avro.MaxHeaderBytes)+`"`, 1)
	expectDamage(t, ocfFile(t, schema, "null", mixedRecords(0, 1)), 0,
		"header value", fmt.Sprintf("the header is limited to %d bytes", avro.MaxHeaderBytes))
}

func TestScannerRejectsNonCurrentsSchema(t *testing.T) {
	for schema, why := range map[string]string{
		`{"type":"record","name":"Event","namespace":"com.example","fields":[{"name":"id","type":"string"},{"name":"time","type":"int"}]}`: `schema "com.example.Event" is not a Currents event schema: no ".inner." event type`,
		`{"type":"record","name":"dataexport.S3.inner.x.Y","fields":[{"name":"id","type":"string"}]}`:                                      `schema "dataexport.S3.inner.x.Y" is not a Currents event schema: no "time" field`,
		`{"type":"record","name":"foo.Bar","fields":[{"name":"n","type":"int"}]}`:                                                          `schema "foo.Bar" is not a Currents event schema: no ".inner." event type; no "id" field; no "time" field`,
	} {
		rec := map[string]any{"id": "x", "time": int32(1), "n": int32(1)}
		if !strings.Contains(schema, `"time"`) {
			delete(rec, "time")
		}
		expectDamage(t, ocfFile(t, schema, "null", []any{rec}), 0, "at byte 0", why)
	}
	expectDamage(t, ocfFile(t, `"string"`, "null", []any{"x"}), 0, "schema is not a record")
}

// oversizeRecords are mixed records 0-9 where record 3 holds a string over
// the record limit and record 6 spans more than it in an array of small
// strings.
func oversizeRecords() []any {
	records := mixedRecords(0, 10)
	records[3].(map[string]any)["external_user_id"] = map[string]any{"string": strings.Repeat("u", avro.MaxRecordBytes)}
	var reasons []any
	for range avro.MaxRecordBytes / 1000 {
		reasons = append(reasons, strings.Repeat("r", 1010))
	}
	records[6].(map[string]any)["reasons"] = map[string]any{"array": reasons}
	return records
}

// TestScannerFlagsOversizeRecordsAndGoesOn: records 3 and 6, over the
// record limit, go on in their place as messages flagged with an error
// naming the source, the index, the size and the limit, their content a small
// JSON object saying where the record is (not the record), their metadata as
// every event's; the records around them are delivered.
func TestScannerFlagsOversizeRecordsAndGoesOn(t *testing.T) {
	data := ocfFile(t, mixedSchema, "deflate", oversizeRecords()[:5], oversizeRecords()[5:])
	for _, conf := range []string{"batch_size: 4\nstructured: true", "batch_size: 4\nstructured: false"} {
		s := newTestScanner(t, conf, emailSendKey, bytes.NewReader(data))
		batches, err := s.drain()
		if err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		var got []string
		for _, b := range batches {
			for _, m := range b.msgs {
				index := meta(t, m, MetaRecordIndex)
				got = append(got, index)
				raw, _ := m.AsBytes()
				if index != "3" && index != "6" {
					if m.GetError() != nil || !strings.Contains(string(raw), `"id":"id-`+index+`"`) {
						t.Fatalf("%s: record %s is %.100s (error %v)", conf, index, raw, m.GetError())
					}
					continue
				}
				var content struct {
					Oversize struct {
						Source      string `json:"source"`
						RecordIndex int64  `json:"record_index"`
						EventType   string `json:"event_type"`
						AvroBytes   int    `json:"avro_bytes"`
						LimitBytes  int    `json:"limit_bytes"`
					} `json:"oversize_record"`
				}
				if err := json.Unmarshal(raw, &content); err != nil || len(raw) > 1024 {
					t.Fatalf("%s: record %s content %.200s: %v", conf, index, raw, err)
				}
				o := content.Oversize
				if fmt.Sprint(o.RecordIndex) != index || o.Source != emailSendKey || o.EventType != emailSend || o.AvroBytes <= avro.MaxRecordBytes || o.LimitBytes != avro.MaxRecordBytes {
					t.Fatalf("%s: record %s content %s", conf, index, raw)
				}
				want := fmt.Sprintf("record %s of %q: %d bytes of Avro, over the %d-byte record limit", index, emailSendKey, o.AvroBytes, avro.MaxRecordBytes)
				if m.GetError() == nil || !strings.Contains(m.GetError().Error(), want) {
					t.Fatalf("%s: record %s error %v, want %q in it", conf, index, m.GetError(), want)
				}
				if meta(t, m, MetaEventType) != emailSend || meta(t, m, MetaSource) != emailSendKey || meta(t, m, MetaIntegrationID) != "5a1b2c3d4e5f60718293a4b5" {
					t.Fatalf("%s: record %s metadata event type %q, source %q", conf, index, meta(t, m, MetaEventType), meta(t, m, MetaSource))
				}
			}
		}
		if strings.Join(got, ",") != "0,1,2,3,4,5,6,7,8,9" {
			t.Fatalf("%s: records %v delivered", conf, got)
		}
		logs := s.logs.String()
		for _, index := range []string{"3", "6"} {
			want := "record " + index + ` of \"` + emailSendKey
			if !strings.Contains(logs, want) || !strings.Contains(logs, fmt.Sprintf("over the %d-byte record limit", avro.MaxRecordBytes)) {
				t.Fatalf("%s: no %q in the logs:\n%s", conf, want, logs)
			}
		}
	}
}

// A read resumed after record 4 (as the input does after a failed
// download) skips the oversize record 3 silently: the read that met it
// reported it and sent it on flagged. Record 6 is flagged.
func TestScannerResumesPastOversizeRecords(t *testing.T) {
	logs := &bytes.Buffer{}
	parsed, err := scannerSpec().ParseYAML("", nil)
	if err != nil {
		t.Fatal(err)
	}
	creator, err := scannerFromParsed(parsed, service.MockResources(service.MockResourcesOptUseLogger(
		service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil))))))
	if err != nil {
		t.Fatal(err)
	}
	data := ocfFile(t, mixedSchema, "null", oversizeRecords())
	s := creator.newEventScanner(io.NopCloser(bytes.NewReader(data)), emailSendKey, 4, nil)
	var got []string
	for {
		batch, err := s.NextBatch(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range batch {
			got = append(got, meta(t, m, MetaRecordIndex))
			if flagged := m.GetError() != nil; flagged != (got[len(got)-1] == "6") {
				t.Fatalf("record %s flagged: %v", got[len(got)-1], m.GetError())
			}
		}
	}
	if strings.Join(got, ",") != "4,5,6,7,8,9" || s.next != 10 {
		t.Fatalf("records %v delivered, %d read", got, s.next)
	}
	if strings.Contains(logs.String(), "record 3 of") || !strings.Contains(logs.String(), "record 6 of") {
		t.Fatalf("logs:\n%s", logs)
	}
}

// A schema may name a field with 200 KB: each record of two bytes then
// writes 200 KB of JSON, and a batch of 1,000 must not reserve 200 MB for
// them up front.
func TestScannerSizesBatchesWithinTheBatchOutputLimit(t *testing.T) {
	long := strings.Repeat("k", 200<<10)
	var records []any
	for range 1000 {
		records = append(records, withIDTime(map[string]any{long: nil}))
	}
	data := ocfFile(t, currentsSchema(`{"name":"`+long+`","type":"null"}`), "null", records)
	s := newTestScanner(t, "structured: false", emailSendKey, bytes.NewReader(data))
	defer s.scan.Close(context.Background())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	batch, _, err := s.scan.NextBatch(context.Background())
	runtime.ReadMemStats(&after)
	if err != nil || len(batch) == 0 {
		t.Fatalf("first batch: %d events, %.200v", len(batch), err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 3*avro.MaxBatchOutput {
		t.Fatalf("a batch of %d events allocated %d MiB", len(batch), got>>20)
	}
}

// Records of no bytes (id and time of type null) would let a block of a few
// bytes claim thousands of events: such a schema is not a Currents one.
func TestScannerRejectsSchemasOfZeroByteRecords(t *testing.T) {
	schema := `{"type":"record","name":"dataexport.S3.inner.x.Y","fields":[{"name":"id","type":"null"},{"name":"time","type":"null"}]}`
	data := ocfFile(t, schema, "null", []any{map[string]any{"id": nil, "time": nil}})
	// The block's header: 1 record (zig-zag 0x02) of 0 bytes. Claim 16,000.
	i := bytes.LastIndex(data, []byte{0x02, 0x00})
	data = append(append(bytes.Clone(data[:i]), 0x80, 0xfa, 0x01), data[i+1:]...)
	expectDamage(t, data, 0, `schema "dataexport.S3.inner.x.Y" is not a Currents event schema`, `"id" is not a string`, `"time" is not an int or long`)
}

// A fixed size is read as goavro reads it, a number or a string of
// digits; a size no block can hold fails the record that uses it.
func TestScannerReadsFixedSizesAsGoavroDoes(t *testing.T) {
	data := ocfFile(t, currentsSchema(`{"name":"f","type":{"type":"fixed","name":"F","size":"2"}}`), "null",
		[]any{withIDTime(map[string]any{"f": []byte("ab")})})
	batches, err := newTestScanner(t, "structured: false", emailSendKey, bytes.NewReader(data)).drain()
	if got := bodies(t, batches); err != nil || len(got) != 1 || got[0] != `{"f":"ab","id":"x","time":1}` {
		t.Fatalf("fixed of size \"2\" decoded as %q, %v", got, err)
	}
	data = bytes.Clone(ocfFile(t, currentsSchema(`{"name":"f","type":["null",{"type":"fixed","name":"F","size":1e300}]}`), "null",
		[]any{withIDTime(map[string]any{"f": nil})}))
	i := bytes.Index(data, []byte{0, 2, 'x', 2}) // f null, id "x", time 1
	data[i] = 2                                  // f of type F
	expectDamage(t, data, 0, "record 0", "record runs past the end of its block")
}
