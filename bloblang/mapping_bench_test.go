package bloblang_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// BenchmarkMapping runs the shipped mapping over Currents events of the 50
// forwarded types, as the shipped pipelines call it (BENCH_MAPPING names a
// file holding another mapping to measure instead).
// Run: go test ./bloblang -run '^$' -bench Mapping
func BenchmarkMapping(b *testing.B) {
	if err := os.Chdir(".."); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = os.Chdir("bloblang") }()
	var batch service.MessageBatch
	i := 0
	for et := range fixtures.SegmentEvents() {
		var buf bytes.Buffer
		records, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: et, Records: 20, Seed: uint64(i)})
		if err != nil {
			b.Fatal(err)
		}
		i++
		for _, r := range records {
			msg := service.NewMessage(nil)
			msg.SetStructured(r)
			msg.MetaSet("braze_event_type", et)
			batch = append(batch, msg)
		}
	}
	// The options the shipped configs read (read once, when the mapping is
	// parsed): the defaults, with anonymous users included so that every
	// event is mapped.
	for _, k := range []string{"BRAZE_EVENT_TYPES", "BRAZE_EXCLUDE_EVENT_TYPES", "BRAZE_OTHER_EVENT_TYPES", "BRAZE_ALL_FIELDS"} {
		b.Setenv(k, "") // restored when the benchmark ends
		_ = os.Unsetenv(k)
	}
	b.Setenv("BRAZE_INCLUDE_ANONYMOUS", "true")
	mapping := `import "./bloblang/currents_to_segment.blobl"
root = {"event": this, "event_type": @braze_event_type}.apply("currents_to_segment")`
	if alt := os.Getenv("BENCH_MAPPING"); alt != "" {
		raw, err := os.ReadFile(alt)
		if err != nil {
			b.Fatal(err)
		}
		mapping = string(raw)
	}
	exec, err := bloblang.Parse(mapping)
	if err != nil {
		b.Fatal(err)
	}
	// json: what a pipeline reading JSON text pays (parsing it, serialising
	// the call); structured: what ours pays, with structured events in and
	// the call read structured by the segment output.
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for _, src := range batch {
				raw, _ := src.AsBytes()
				m := service.NewMessage(raw)
				et, _ := src.MetaGet("braze_event_type")
				m.MetaSet("braze_event_type", et)
				out, err := m.BloblangQuery(exec)
				if err != nil {
					continue // events without any user: errors by design
				}
				if out != nil {
					_, _ = out.AsBytes()
				}
				n++
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	})
	b.Run("structured", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for _, src := range batch {
				if _, err := src.BloblangQuery(exec); err == nil {
					n++
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	})
}
