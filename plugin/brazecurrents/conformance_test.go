package brazecurrents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// scanFixture writes spec with the fixture generator, scans it, and checks
// every event against the record the generator wrote: same values, field
// order of the writer schema, and the metadata the key and schema carry; and
// that structured events hold the same values as the JSON text.
func scanFixture(t *testing.T, spec fixtures.FileSpec) {
	t.Helper()
	var buf bytes.Buffer
	records, err := fixtures.WriteFile(&buf, spec)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := spec.ResolvedFields()
	if err != nil {
		t.Fatal(err)
	}
	key := fixtures.Key(spec)
	checkModesAgree(t, key, buf.Bytes())
	batches, err := newTestScanner(t, "batch_size: 11\nstructured: false", key, bytes.NewReader(buf.Bytes())).drain()
	if err != nil {
		t.Fatal(err)
	}
	got := bodies(t, batches)
	if len(got) != len(records) {
		t.Fatalf("%s: %d events decoded, %d written", key, len(got), len(records))
	}
	wantKey := ParseObjectKey(key)
	i := 0
	for _, b := range batches {
		for _, m := range b.msgs {
			if et := meta(t, m, MetaEventType); et != spec.EventType {
				t.Fatalf("%s: event type metadata %q", key, et)
			}
			if id := meta(t, m, MetaIntegrationID); id != wantKey.IntegrationID || id == "" {
				t.Fatalf("%s: integration id metadata %q", key, id)
			}
			compareEvent(t, fmt.Sprintf("%s record %d", key, i), got[i], fields, records[i])
			i++
		}
	}
}

func compareEvent(t *testing.T, where, body string, fields []fixtures.Field, want map[string]any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var order []string
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &struct{}{}); err != nil {
		t.Fatalf("%s: invalid JSON %s", where, body)
	}
	tokens := json.NewDecoder(strings.NewReader(body))
	_, _ = tokens.Token() // {
	for tokens.More() {
		k, _ := tokens.Token()
		order = append(order, k.(string))
		var skip json.RawMessage
		_ = tokens.Decode(&skip)
	}
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	for i, f := range fields {
		if i >= len(order) || order[i] != f.Name {
			t.Fatalf("%s: field order %v, schema order starts %s at %d", where, order, f.Name, i)
		}
		if !sameValue(got[f.Name], want[f.Name]) {
			t.Fatalf("%s: %s = %#v, wrote %#v", where, f.Name, got[f.Name], want[f.Name])
		}
	}
	if len(order) != len(fields) {
		t.Fatalf("%s: %d fields decoded, schema has %d", where, len(order), len(fields))
	}
}

// sameValue compares a decoded JSON value with a plain fixture value. Floats
// are Avro floats: equal when equal as float32.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case int64:
		n, ok := got.(json.Number)
		return ok && n.String() == fmt.Sprint(w)
	case float64:
		n, ok := got.(json.Number)
		f, err := n.Float64()
		return ok && err == nil && float32(f) == float32(w) && !math.IsNaN(f)
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

func TestScannerDecodesEveryEventType(t *testing.T) {
	types := fixtures.EventTypes()
	if len(types) < 90 {
		t.Fatalf("only %d event types in the facts", len(types))
	}
	for i, et := range types {
		codec := []string{"null", "deflate", "snappy", "zstandard", "bzip2"}[i%5]
		t.Run(et, func(t *testing.T) {
			scanFixture(t, fixtures.FileSpec{EventType: et, Codec: codec, Records: 40, BlockRecords: 15, Seed: uint64(i)})
		})
	}
}

func TestScannerDecodesEverySchemaVersion(t *testing.T) {
	versions := 0
	for i, et := range fixtures.EventTypes() {
		for v, sv := range fixtures.Versions(et) {
			versions++
			scanFixture(t, fixtures.FileSpec{EventType: et, Fields: sv.Fields, Records: 12, BlockRecords: 5,
				Seed: uint64(i*100 + v), Version: v + 1})
		}
	}
	if versions < 150 {
		t.Fatalf("only %d schema versions exercised", versions)
	}
}

func TestScannerKeyLayoutsAndConns(t *testing.T) {
	for _, layout := range []string{"current", "legacy", "veryold"} {
		for _, conn := range []string{"S3", "GCS", "AzureBlob"} {
			scanFixture(t, fixtures.FileSpec{EventType: "users.messages.whatsapp.Send", Layout: layout, Conn: conn,
				Records: 5, Seed: 7, TimeLong: true})
		}
	}
	scanFixture(t, fixtures.FileSpec{EventType: "users.messages.email.Send", TimeLong: true, Records: 9, Seed: 8})
}

func TestScannerLargeMultiBlockFile(t *testing.T) {
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Delivery",
		Records: 100_000, BlockRecords: 1000, Codec: "deflate", Seed: 3}); err != nil {
		t.Fatal(err)
	}
	s := newTestScanner(t, "", "big.avro", bytes.NewReader(buf.Bytes()))
	batches, err := s.drain()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, body := range bodies(t, batches) {
		var ev struct{ ID string }
		if err := json.Unmarshal([]byte(body), &ev); err != nil || ev.ID == "" || ids[ev.ID] {
			t.Fatalf("bad or repeated event %s", body)
		}
		ids[ev.ID] = true
	}
	if len(ids) != 100_000 {
		t.Fatalf("%d distinct events, want 100000", len(ids))
	}
}
