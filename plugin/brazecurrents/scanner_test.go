package brazecurrents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
)

const emailSendKey = "currents/dataexport.prod-01.S3.integration.5a1b2c3d4e5f60718293a4b5/event_type=users.messages.email.Send/date=2026-11-01-10/version=3/prod/dataexport.prod-01.S3.integration.5a1b2c3d4e5f60718293a4b5+0+0000000042.avro"

// A schema with every shape Currents uses: required and nullable fields,
// int and long, float, boolean, and both kinds of string arrays.
const mixedSchema = `{
  "type": "record", "name": "dataexport.S3.inner.users.messages.email.Send", "owner": "someone",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "time", "type": "int"},
    {"name": "time_ms", "type": ["null", "long"], "default": null},
    {"name": "external_user_id", "type": ["null", "string"], "default": null},
    {"name": "score", "type": "float"},
    {"name": "is_bot", "type": ["null", "boolean"], "default": null},
    {"name": "reasons", "type": ["null", {"type": "array", "items": "string"}], "default": null},
    {"name": "media", "type": ["null", {"type": "array", "items": ["null", "string"]}], "default": null}
  ]}`

func mixedRecord(i int) map[string]any {
	r := map[string]any{
		"id":               fmt.Sprintf("id-%d", i),
		"time":             int32(1761991200 + i),
		"time_ms":          nil,
		"external_user_id": map[string]any{"string": fmt.Sprintf("user-%d", i)},
		"score":            float32(1.5),
		"is_bot":           map[string]any{"boolean": i%2 == 0},
		"reasons":          map[string]any{"array": []any{"a", "b"}},
		"media":            map[string]any{"array": []any{nil, map[string]any{"string": "https://x"}}},
	}
	if i%3 == 0 {
		r["external_user_id"] = nil
		r["reasons"] = nil
		r["time_ms"] = map[string]any{"long": int64(1761991200123)}
	}
	return r
}

func mixedRecords(from, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = mixedRecord(from + i)
	}
	return out
}

func TestScannerDecodesEveryShape(t *testing.T) {
	for _, codec := range []string{"null", "deflate", "snappy"} {
		t.Run(codec, func(t *testing.T) {
			data := ocfFile(t, mixedSchema, codec, mixedRecords(0, 2), mixedRecords(2, 2))
			s := newTestScanner(t, "structured: false", emailSendKey, bytes.NewReader(data))
			batches, err := s.drain()
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				`{"id":"id-0","time":1761991200,"time_ms":1761991200123,"external_user_id":null,"score":1.5,"is_bot":true,"reasons":null,"media":[null,"https://x"]}`,
				`{"id":"id-1","time":1761991201,"time_ms":null,"external_user_id":"user-1","score":1.5,"is_bot":false,"reasons":["a","b"],"media":[null,"https://x"]}`,
				`{"id":"id-2","time":1761991202,"time_ms":null,"external_user_id":"user-2","score":1.5,"is_bot":true,"reasons":["a","b"],"media":[null,"https://x"]}`,
				`{"id":"id-3","time":1761991203,"time_ms":1761991200123,"external_user_id":null,"score":1.5,"is_bot":false,"reasons":null,"media":[null,"https://x"]}`,
			}
			if got := bodies(t, batches); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestScannerTimeIntAndLongDecodeAlike(t *testing.T) {
	schema := func(typ string) string {
		return `{"type":"record","name":"dataexport.S3.inner.users.messages.whatsapp.Send","fields":[{"name":"id","type":"string"},{"name":"time","type":"` + typ + `"}]}`
	}
	intFile := ocfFile(t, schema("int"), "null", []any{map[string]any{"id": "x", "time": int32(1761991200)}})
	longFile := ocfFile(t, schema("long"), "null", []any{map[string]any{"id": "x", "time": int64(1761991200)}})
	for name, data := range map[string][]byte{"int": intFile, "long": longFile} {
		batches, err := newTestScanner(t, "", "f.avro", bytes.NewReader(data)).drain()
		if err != nil {
			t.Fatal(err)
		}
		if got := bodies(t, batches); len(got) != 1 || got[0] != `{"id":"x","time":1761991200}` {
			t.Errorf("%s time decoded as %v", name, got)
		}
	}
}

func TestScannerMetadata(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 3))
	batches, err := newTestScanner(t, "", emailSendKey, bytes.NewReader(data)).drain()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range batches[0].msgs {
		for key, want := range map[string]string{
			MetaEventType:     "users.messages.email.Send",
			MetaIntegrationID: "5a1b2c3d4e5f60718293a4b5",
			MetaDateHour:      "2026-11-01-10",
			MetaVersion:       "3",
			MetaSource:        emailSendKey,
			MetaRecordIndex:   fmt.Sprint(i),
		} {
			if got := meta(t, m, key); got != want {
				t.Errorf("record %d: %s = %q, want %q", i, key, got, want)
			}
		}
	}
}

func TestScannerEventTypeFromSchemaName(t *testing.T) {
	// A GCS or Azure schema name is undocumented: anything before .inner. goes.
	schema := `{"type":"record","name":"Click","namespace":"dataexport.AzureBlob.inner.users.messages.email","fields":[{"name":"id","type":"string"},{"name":"time","type":"int"}]}`
	data := ocfFile(t, schema, "null", []any{map[string]any{"id": "x", "time": int32(1)}})
	batches, err := newTestScanner(t, "", emailSendKey, bytes.NewReader(data)).drain()
	if err != nil {
		t.Fatal(err)
	}
	if got := meta(t, batches[0].msgs[0], MetaEventType); got != "users.messages.email.Click" {
		t.Fatalf("event type %q", got)
	}
}

func TestScannerBatchesSpanBlocks(t *testing.T) {
	data := ocfFile(t, mixedSchema, "deflate", mixedRecords(0, 7), mixedRecords(7, 7), mixedRecords(14, 1))
	batches, err := newTestScanner(t, "batch_size: 5", "f.avro", bytes.NewReader(data)).drain()
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	index := 0
	for _, b := range batches {
		sizes = append(sizes, len(b.msgs))
		for _, m := range b.msgs {
			if got := meta(t, m, MetaRecordIndex); got != fmt.Sprint(index) {
				t.Fatalf("record index %s, want %d", got, index)
			}
			index++
		}
	}
	if fmt.Sprint(sizes) != "[5 2 5 2 1]" {
		t.Fatalf("batch sizes %v: batches never exceed batch_size and never straddle blocks", sizes)
	}
}

// TestScannerDecodesOneBatchAtATime checks that a block is decoded as
// batches are asked for, so a large block never sits decoded in memory.
func TestScannerDecodesOneBatchAtATime(t *testing.T) {
	for _, conf := range []string{"structured: true", "structured: false"} {
		parsed, err := scannerSpec().ParseYAML(conf+"\nbatch_size: 10", nil)
		if err != nil {
			t.Fatal(err)
		}
		creator, err := scannerFromParsed(parsed, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 100))
		s := creator.newEventScanner(io.NopCloser(bytes.NewReader(data)), "f.avro", 0, nil)
		for i := range 3 {
			batch, err := s.NextBatch(context.Background())
			if err != nil || len(batch) != 10 {
				t.Fatalf("%s: batch %d: %d events, %v", conf, i, len(batch), err)
			}
			if s.block.done != int64(10*(i+1)) {
				t.Fatalf("%s: %d of the block's 100 records decoded after %d batches of 10", conf, s.block.done, i+1)
			}
		}
	}
}

func TestScannerMicroReadsDecodeTheSame(t *testing.T) {
	data := ocfFile(t, mixedSchema, "snappy", mixedRecords(0, 50), mixedRecords(50, 50))
	whole, err := newTestScanner(t, "", "f.avro", bytes.NewReader(data)).drain()
	if err != nil {
		t.Fatal(err)
	}
	micro, err := newTestScanner(t, "", "f.avro", oneByteReader{bytes.NewReader(data)}).drain()
	if err != nil {
		t.Fatal(err)
	}
	a, b := bodies(t, whole), bodies(t, micro)
	if len(a) != 100 || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("one-byte reads decoded %d events differently from %d", len(b), len(a))
	}
}

func TestScannerAcksSourceOnlyAfterEveryBatch(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 3), mixedRecords(3, 3), mixedRecords(6, 3))
	s := newTestScanner(t, "batch_size: 2", "f.avro", bytes.NewReader(data))
	batches, err := s.drain()
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 6 {
		t.Fatalf("%d batches", len(batches))
	}
	// Out of order: last first, then the rest backwards.
	for i := len(batches) - 1; i > 0; i-- {
		if err := batches[i].ack(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if acks := s.ack.get(); len(acks) != 0 {
			t.Fatalf("source acked with %d of %d batches outstanding", i, len(batches))
		}
	}
	if err := batches[0].ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.scan.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if acks := s.ack.get(); len(acks) != 1 || acks[0] != nil {
		t.Fatalf("source acks %v, want one success", acks)
	}
}

func TestScannerNackOfAnyBatchNacksSource(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 4))
	s := newTestScanner(t, "batch_size: 2", "f.avro", bytes.NewReader(data))
	batches, err := s.drain()
	if err != nil {
		t.Fatal(err)
	}
	_ = batches[0].ack(context.Background(), nil)
	_ = batches[1].ack(context.Background(), errors.New("segment said no"))
	_ = s.scan.Close(context.Background())
	acks := s.ack.get()
	if len(acks) != 1 || acks[0] == nil || !strings.Contains(acks[0].Error(), "segment said no") {
		t.Fatalf("source acks %v, want one nack carrying the cause", acks)
	}
}

func TestScannerCloseBeforeEndNacksSource(t *testing.T) {
	data := ocfFile(t, mixedSchema, "null", mixedRecords(0, 4), mixedRecords(4, 4))
	s := newTestScanner(t, "batch_size: 2", "f.avro", bytes.NewReader(data))
	b, ack, err := s.scan.NextBatch(context.Background())
	if err != nil || len(b) != 2 {
		t.Fatalf("first batch: %d events, %v", len(b), err)
	}
	_ = ack(context.Background(), nil)
	_ = s.scan.Close(context.Background())
	if acks := s.ack.get(); len(acks) != 1 || acks[0] == nil {
		t.Fatalf("source acks %v, want a nack: the file was not read to its end", acks)
	}
}

// A block within the block limit is read whole, however much its events
// expand: records of mostly null fields with long names decode to 35 times
// their Avro, and a batch_size far above the default must not let a batch
// of them grow past what a batch may hold.
func TestScannerReadsFullBlocksOfSparseRecords(t *testing.T) {
	var fields []string
	for i := range 40 {
		fields = append(fields, fmt.Sprintf(`{"name":"canvas_step_message_variation_api_identifier_of_the_step_%02d","type":["null","string"],"default":null}`, i))
	}
	schema := currentsSchema(strings.Join(fields, ","))
	var records []any
	for i := range 45_000 {
		records = append(records, withIDTime(map[string]any{"id": fmt.Sprintf("%036d", i)}))
	}
	data := ocfFile(t, schema, "null", records)
	if len(data) > avro.MaxBlockBytes {
		t.Fatalf("the block is %d bytes, over the limit", len(data))
	}
	for _, conf := range []string{"structured: true", "structured: false", "structured: true\nbatch_size: 100000", "structured: false\nbatch_size: 100000"} {
		batches, err := newTestScanner(t, conf, emailSendKey, bytes.NewReader(data)).drain()
		n := 0
		for _, b := range batches {
			n += len(b.msgs)
		}
		if err != nil || n != len(records) {
			t.Errorf("%s: %d of %d events, then %v", conf, n, len(records), err)
		}
	}
}
