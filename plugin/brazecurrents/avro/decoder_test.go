package avro

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

func TestDecoderBoundsOutputOfZeroByteItems(t *testing.T) {
	prog, err := compileSchema([]byte(`{"type":"record","name":"dataexport.S3.inner.x.Y","fields":[` +
		`{"name":"a","type":{"type":"array","items":{"type":"array","items":"null"}}},{"name":"id","type":"string"},{"name":"time","type":"int"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 inner arrays of 16,000 nulls each: 4 KB of Avro claiming 80 MB of JSON.
	zigzag := func(n int64) []byte { return binary.AppendUvarint(nil, uint64(n<<1)) }
	data := zigzag(1000)
	for range 1000 {
		data = append(append(data, zigzag(16000)...), 0)
	}
	data = append(data, 0, 0, 0) // the array's end, an empty id, time 0
	d, err := NewDecoder(prog, Block{Count: 1, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.AppendJSON(nil)
	if !errors.Is(err, errOutputLimit) {
		t.Fatalf("decoded %d bytes of output, err %v", len(out), err)
	}
	if len(out) > 2*d.limit {
		t.Fatalf("output grew to %d bytes past a limit of %d", len(out), d.limit)
	}
}

// BenchmarkDecoder decodes 20,000 email click events held in memory, in
// both forms: the decoder alone, without the file reading and messages that
// the scanner's BenchmarkDecode100k also counts.
// Run: go test ./plugin/brazecurrents/avro -run '^$' -bench Decoder -benchmem -cpu 1
func BenchmarkDecoder(b *testing.B) {
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Click",
		Records: 20_000, BlockRecords: 1000, Seed: 42}); err != nil {
		b.Fatal(err)
	}
	r := NewReader(&buf)
	text, err := r.ReadHeader()
	if err != nil {
		b.Fatal(err)
	}
	schema, err := compileSchema(text)
	if err != nil {
		b.Fatal(err)
	}
	var blocks []Block
	for {
		block, err := r.NextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		block.Data = bytes.Clone(block.Data) // the reader reuses its buffer
		blocks = append(blocks, block)
	}
	decodeAll := func(b *testing.B, record func(d *Decoder) error) {
		for b.Loop() {
			for _, block := range blocks {
				d, _ := NewDecoder(schema, block)
				for range block.Count {
					if err := record(&d); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.Run("json", func(b *testing.B) {
		out := make([]byte, 0, 4<<20)
		decodeAll(b, func(d *Decoder) (err error) {
			out, err = d.AppendJSON(out[:0])
			return err
		})
	})
	b.Run("values", func(b *testing.B) {
		decodeAll(b, func(d *Decoder) error {
			_, err := d.Value()
			return err
		})
	})
}
