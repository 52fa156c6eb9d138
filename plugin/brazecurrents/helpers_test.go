package brazecurrents

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func TestMain(m *testing.M) {
	// The tests' processes start one after the other, or on fake clocks.
	claimSettle = 10 * time.Millisecond
	code := m.Run()
	serviceBus.Close()
	os.Exit(code)
}

// ocfFile writes an Avro OCF with goavro, one block per element of blocks.
func ocfFile(t testing.TB, schema, codec string, blocks ...[]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: schema, CompressionName: codec})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// sourceAck records how the scanner acknowledged its source.
type sourceAck struct {
	mu    sync.Mutex
	calls []error
}

func (s *sourceAck) fn(_ context.Context, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, err)
	return nil
}

func (s *sourceAck) get() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.calls...)
}

// testScanner is a scanner over data with its batches and ack funcs.
type testScanner struct {
	t    testing.TB
	scan service.BatchScanner
	ack  *sourceAck
	logs *bytes.Buffer
}

func newTestScanner(t testing.TB, conf string, name string, r io.Reader) *testScanner {
	t.Helper()
	parsed, err := scannerSpec().ParseYAML(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil)))
	creator, err := scannerFromParsed(parsed, service.MockResources(service.MockResourcesOptUseLogger(logger)))
	if err != nil {
		t.Fatal(err)
	}
	details := service.NewScannerSourceDetails()
	details.SetName(name)
	ack := &sourceAck{}
	scan, err := creator.Create(io.NopCloser(r), ack.fn, details)
	if err != nil {
		t.Fatal(err)
	}
	return &testScanner{t: t, scan: scan, ack: ack, logs: logs}
}

type scannedBatch struct {
	msgs service.MessageBatch
	ack  service.AckFunc
}

// drain reads every batch until the scanner ends, returning the batches and
// the final error (nil for io.EOF).
func (s *testScanner) drain() ([]scannedBatch, error) {
	var out []scannedBatch
	for {
		b, ack, err := s.scan.NextBatch(context.Background())
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, scannedBatch{msgs: b, ack: ack})
	}
}

func bodies(t testing.TB, batches []scannedBatch) []string {
	t.Helper()
	var out []string
	for _, b := range batches {
		for _, m := range b.msgs {
			raw, err := m.AsBytes()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(raw))
		}
	}
	return out
}

func meta(t testing.TB, m *service.Message, key string) string {
	t.Helper()
	v, ok := m.MetaGetMut(key)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	t.Fatalf("metadata %s has unexpected type %T", key, v)
	return ""
}

// oneByteReader hands out data one byte per Read, like a slow network.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// runLogged runs a one-pass stream of the braze_currents input with
// inputYAML into consume and returns the lines it logged, the metrics'
// counters included (logged as the stream closes).
func runLogged(t *testing.T, inputYAML string, consume service.MessageBatchHandlerFunc) []string {
	t.Helper()
	logs, err := os.Create(filepath.Join(t.TempDir(), "logs")) // a file is safe for the stream's goroutines
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	for _, err := range []error{
		b.AddInputYAML("braze_currents:\n" + indent(inputYAML+"\nprogress_interval: 0s", "  ")),
		b.SetMetricsYAML("logger:\n  push_interval: ''"),
		b.AddBatchConsumerFunc(consume),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	runToEnd(t, s)
	text, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(text), "\n")
}
