package brazecurrents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// FuzzScanner feeds arbitrary bytes to the scanner: it must never panic,
// every event it emits must be valid JSON, every error must name the
// source, and structured events must hold what the JSON text holds. Run it with: go test ./plugin/brazecurrents -run '^$' -fuzz FuzzScanner
func FuzzScanner(f *testing.F) {
	f.Add(ocfFile(f, mixedSchema, "null", mixedRecords(0, 3), mixedRecords(3, 2)))
	f.Add(ocfFile(f, mixedSchema, "deflate", mixedRecords(0, 3)))
	f.Add(ocfFile(f, mixedSchema, "snappy", mixedRecords(0, 3)))
	for _, codec := range []string{"zstandard", "bzip2"} { // codecs goavro cannot write
		var buf bytes.Buffer
		if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Send", Codec: codec, Records: 3, BlockRecords: 2, Seed: 1}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(ocfFile(f, currentsSchema(`{"name":"m","type":{"type":"map","values":"double"}},{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"f","type":{"type":"fixed","name":"F","size":2}},{"name":"b","type":"bytes"}`),
		"null", []any{withIDTime(map[string]any{"m": map[string]any{"k": 1.5}, "e": "B", "f": []byte{1, 2}, "b": []byte("xy")})}))
	f.Add([]byte("Obj\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz/input.avro"
		checkModesAgree(t, name, data)
		s := newTestScanner(t, "batch_size: 7\nstructured: false", name, bytes.NewReader(data))
		for {
			batch, ack, err := s.scan.NextBatch(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("error does not name the source: %v", err)
				}
				break
			}
			for _, m := range batch {
				raw, _ := m.AsBytes()
				if !json.Valid(raw) {
					t.Fatalf("invalid JSON emitted: %q", raw)
				}
			}
			_ = ack(context.Background(), nil)
		}
		_ = s.scan.Close(context.Background())
	})
}
