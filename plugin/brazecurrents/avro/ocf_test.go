package avro

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// smallFile is a Currents file of three blocks, and the offsets at which
// its blocks start.
func smallFile(t *testing.T) ([]byte, []int64) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Send",
		Records: 9, BlockRecords: 3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	var starts []int64
	r := NewReader(bytes.NewReader(data))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := r.NextBlock()
		if err == io.EOF {
			return data, starts
		}
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, b.Offset)
	}
}

// readAll reads the header and every block, returning the first error.
func readAll(src io.Reader) error {
	r := NewReader(src)
	defer r.Close()
	if _, err := r.ReadHeader(); err != nil {
		return err
	}
	for {
		if _, err := r.NextBlock(); err != nil {
			return err
		}
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// A download that breaks at any byte, a block boundary or a header field
// included, is a read error, never damage: the source may fail with
// io.ErrUnexpectedEOF, which must not pass for a file that ends there.
func TestReaderBrokenSourceIsNeverCorrupt(t *testing.T) {
	data, _ := smallFile(t)
	for n := range len(data) {
		src := io.MultiReader(bytes.NewReader(data[:n]), failingReader{io.ErrUnexpectedEOF})
		err := readAll(src)
		if errors.Is(err, ErrCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("source failing after %d of %d bytes: %v", n, len(data), err)
		}
	}
}

// A file that really ends early is damage, named with its byte offset,
// wherever it ends, except right after a block, where it is a shorter valid
// file (or an empty one, before any byte).
func TestReaderCutFileIsCorrupt(t *testing.T) {
	data, starts := smallFile(t)
	for n := range len(data) {
		err := readAll(bytes.NewReader(data[:n]))
		if n == 0 || slices.Contains(starts, int64(n)) {
			if err != io.EOF {
				t.Fatalf("file cut after %d bytes, at a block's start: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "at byte ") {
			t.Fatalf("file cut after %d of %d bytes: %v", n, len(data), err)
		}
	}
}
