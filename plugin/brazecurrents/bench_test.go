package brazecurrents

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// benchFile writes a 100,000-event Currents file (the most Braze writes in
// one file) in 100 blocks to disk: read from a file, the live heap is what
// the decoder holds, not the file.
func benchFile(b *testing.B, codec string) string {
	b.Helper()
	var buf bytes.Buffer
	if _, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Click",
		Records: 100_000, BlockRecords: 1000, Codec: codec, Seed: 42}); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "events.avro")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func openBench(b *testing.B, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// peakHeap samples the live heap at the points a streaming consumer would
// have released what it was handed.
type peakHeap struct{ base, peak uint64 }

func newPeakHeap() *peakHeap {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &peakHeap{base: m.HeapInuse}
}

func (p *peakHeap) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapInuse > p.base && m.HeapInuse-p.base > p.peak {
		p.peak = m.HeapInuse - p.base
	}
}

func reportPerEvent(b *testing.B, events int, start time.Time, heap *peakHeap) {
	elapsed := time.Since(start)
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(events), "ns/event")
	b.ReportMetric(float64(heap.peak)/(1<<20), "peak-heap-MB")
}

// BenchmarkDecode100k compares, on one core, the scanner's JSON and
// structured output with goavro decoding the same file into native Go values (no JSON at all), and
// with goavro followed by encoding/json (what a plain implementation does).
// Run: go test ./plugin/brazecurrents -run '^$' -bench Decode100k -benchmem -cpu 1
func BenchmarkDecode100k(b *testing.B) {
	for _, codec := range []string{"null", "deflate"} {
		path := benchFile(b, codec)
		for mode, conf := range map[string]string{"scanner-json": "structured: false", "scanner-structured": "structured: true"} {
			b.Run(mode+"/"+codec, func(b *testing.B) {
				benchScanner(b, conf, path)
			})
		}
		b.Run("goavro-native/"+codec, func(b *testing.B) {
			b.ReportAllocs()
			heap := newPeakHeap()
			events := 0
			start := time.Now()
			for b.Loop() {
				f := openBench(b, path)
				r, err := goavro.NewOCFReader(bufio.NewReaderSize(f, 64<<10))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				for r.Scan() {
					if _, err := r.Read(); err != nil {
						b.Fatal(err)
					}
					if events++; events%20_000 == 0 {
						heap.sample()
					}
				}
			}
			reportPerEvent(b, events, start, heap)
		})
		b.Run("goavro-then-encoding-json/"+codec, func(b *testing.B) {
			b.ReportAllocs()
			heap := newPeakHeap()
			events := 0
			start := time.Now()
			for b.Loop() {
				f := openBench(b, path)
				r, err := goavro.NewOCFReader(bufio.NewReaderSize(f, 64<<10))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				for r.Scan() {
					v, err := r.Read()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := json.Marshal(v); err != nil {
						b.Fatal(err)
					}
					if events++; events%20_000 == 0 {
						heap.sample()
					}
				}
			}
			reportPerEvent(b, events, start, heap)
		})
	}
}

// benchScanner decodes the file at path with the scanner configured by conf.
func benchScanner(b *testing.B, conf, path string) {
	b.ReportAllocs()
	heap := newPeakHeap()
	events := 0
	start := time.Now()
	for b.Loop() {
		s := newTestScanner(b, conf, fixtures.Key(fixtures.FileSpec{EventType: "users.messages.email.Click"}), openBench(b, path))
		for {
			batch, ack, err := s.scan.NextBatch(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			events += len(batch)
			_ = ack(context.Background(), nil)
			if events%20_000 == 0 {
				heap.sample()
			}
		}
		_ = s.scan.Close(context.Background())
	}
	reportPerEvent(b, events, start, heap)
}
