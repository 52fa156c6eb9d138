package avro

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// codecSpec is the file every codec test encodes: 40 records in blocks of 15.
var codecSpec = fixtures.FileSpec{EventType: "users.messages.email.Send", Records: 40, BlockRecords: 15, Seed: 3}

// codecFile writes codecSpec with codec, its blocks compressed by compress
// if not nil.
func codecFile(t *testing.T, codec string, compress func([]byte) ([]byte, error)) []byte {
	t.Helper()
	spec := codecSpec
	spec.Codec, spec.Compress = codec, compress
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readBlocks reads every block of an object, failing the test on any error.
func readBlocks(t *testing.T, data []byte) (blocks []Block) {
	t.Helper()
	r := NewReader(bytes.NewReader(data))
	defer r.Close()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := r.NextBlock()
		if err == io.EOF {
			return blocks
		}
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, Block{Count: b.Count, Data: bytes.Clone(b.Data)})
	}
}

// Every codec read reads to the very blocks codec null holds: goavro
// writes null, deflate and snappy, the fixtures zstandard and bzip2 (of one
// bzip2 stream, and of two one after the other, as bzip2 allows).
func TestReaderReadsEveryCodec(t *testing.T) {
	want := readBlocks(t, codecFile(t, "null", nil))
	files := map[string][]byte{}
	for _, codec := range []string{"null", "deflate", "snappy", "zstandard", "bzip2"} {
		files[codec] = codecFile(t, codec, nil)
	}
	files["bzip2 two streams"] = codecFile(t, "bzip2", func(p []byte) ([]byte, error) {
		a, err := fixtures.Bzip2(p[:len(p)/2])
		if err != nil {
			return nil, err
		}
		b, err := fixtures.Bzip2(p[len(p)/2:])
		return append(a, b...), err
	})
	for name, data := range files {
		got := readBlocks(t, data)
		if len(got) != len(want) {
			t.Fatalf("%s: %d blocks, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].Count != want[i].Count || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("%s: block %d differs from codec null's", name, i)
			}
		}
	}
}

// oneBlock writes an object of codec whose one block holds compressed.
func oneBlock(t *testing.T, codec string, compressed []byte) []byte {
	spec := codecSpec
	spec.Records, spec.Codec = 1, codec
	spec.Compress = func([]byte) ([]byte, error) { return compressed, nil }
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// blockErr reads an object and returns the error of its first block.
func blockErr(data []byte) error {
	r := NewReader(bytes.NewReader(data))
	defer r.Close()
	if _, err := r.ReadHeader(); err != nil {
		return err
	}
	_, err := r.NextBlock()
	return err
}

// A bomb of 16 MiB of zeros stops at the block limit, costing about the
// limit.
func TestReaderStopsBzip2Bombs(t *testing.T) {
	must := mustFor(t)
	zeros := make([]byte, 4*MaxBlockBytes)
	for codec, compressed := range map[string][]byte{
		"bzip2": must(fixtures.Bzip2(zeros)),
	} {
		data := oneBlock(t, codec, compressed)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := blockErr(data)
		runtime.ReadMemStats(&after)
		if !strings.Contains(fmt.Sprint(err), errInflates.Error()) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), codec+" block") {
			t.Fatalf("%s bomb of %d bytes: %v", codec, len(compressed), err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4*MaxBlockBytes {
			t.Fatalf("%s bomb allocated %d MiB", codec, got>>20)
		}
	}
}

// Cut or damaged compressed bytes are a clear error, never a shorter or
// wrong block.
func TestReaderRejectsDamagedBzip2Blocks(t *testing.T) {
	must := mustFor(t)
	plain := readBlocks(t, codecFile(t, "null", nil))[0].Data
	for codec, compressed := range map[string][]byte{
		"bzip2": must(fixtures.Bzip2(plain)),
	} {
		for n := range len(compressed) {
			if !probed(n, len(compressed)) {
				continue
			}
			if err := blockErr(oneBlock(t, codec, compressed[:n])); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), codec+" block") {
				t.Fatalf("%s block cut after %d of %d bytes: %v", codec, n, len(compressed), err)
			}
		}
		for i := range len(compressed) {
			if !probed(i, len(compressed)) {
				continue
			}
			damaged := bytes.Clone(compressed)
			damaged[i] ^= 0x55
			data := oneBlock(t, codec, damaged)
			if err := blockErr(data); err == nil {
				if got := readBlocks(t, data); !bytes.Equal(got[0].Data, plain) {
					t.Fatalf("%s block with byte %d of %d damaged reads wrong", codec, i, len(compressed))
				}
			} else if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), codec+" block") {
				t.Fatalf("%s block with byte %d of %d damaged: %v", codec, i, len(compressed), err)
			}
		}
	}
}

// probed says whether to damage byte i of n: each of the headers and
// trailers, and a sample of the data between, as each try costs a
// decoder's tables (up to 3.6 MB).
func probed(i, n int) bool { return i < 64 || i >= n-64 || i%17 == 0 }

// mustFor returns a function that fails t on an error and returns the bytes.
func mustFor(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// An xz object is refused at its header, saying why: its blocks could claim
// gigabytes of dictionary, which no decoder at hand bounds.
func TestReaderRefusesXZ(t *testing.T) {
	err := blockErr(oneBlock(t, "xz", []byte("never read")))
	if !errors.Is(err, errNoCodec) || !strings.Contains(err.Error(), `"xz": not read, as an xz block may claim gigabytes`) {
		t.Fatalf("xz object: %v", err)
	}
}
