package bloblang_test

import (
	"bytes"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// benchRecords is the number of generated events of each type the benchmark maps.
const benchRecords = 20

// BenchmarkMapping runs the shipped mapping as the shipped pipelines call it
// (BENCH_MAPPING names a file holding another mapping to measure instead), each
// sub-benchmark reporting µs/event, cpu-µs/event (the process's CPU time, which
// other work on a shared machine inflates less than wall time) and
// allocs/event:
//   - json: the 50 forwarded types from JSON text, the call serialised (what a
//     pipeline reading JSON pays);
//   - structured: the 50 types, structured events in and out (what ours pays);
//   - email_send: users.messages.email.Send alone;
//   - unmappable: events of the 50 types without any user, which the mapping
//     fails so that they reach the dead letter output.
//
// Run: go test ./bloblang -run '^$' -bench Mapping -benchmem
func BenchmarkMapping(b *testing.B) {
	if err := os.Chdir(".."); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = os.Chdir("bloblang") }()
	var mapped, emailSend, unmappable service.MessageBatch
	i := 0
	for et := range fixtures.SegmentEvents() {
		var buf bytes.Buffer
		records, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: et, Records: benchRecords, Seed: uint64(i)})
		if err != nil {
			b.Fatal(err)
		}
		i++
		for _, r := range records {
			if r["user_id"] == nil && r["external_user_id"] == nil {
				continue // unmappable: measured on their own below
			}
			mapped = append(mapped, benchMessage(r, et))
			if et == "users.messages.email.Send" {
				emailSend = append(emailSend, benchMessage(r, et))
			}
			noUser := map[string]any{}
			for k, v := range r {
				noUser[k] = v
			}
			noUser["user_id"], noUser["external_user_id"] = nil, nil
			unmappable = append(unmappable, benchMessage(noUser, et))
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

	b.Run("json", func(b *testing.B) {
		benchEvents(b, mapped, func(src *service.Message) error {
			raw, _ := src.AsBytes()
			m := service.NewMessage(raw)
			et, _ := src.MetaGet("braze_event_type")
			m.MetaSet("braze_event_type", et)
			out, err := m.BloblangQuery(exec)
			if err == nil && out != nil {
				_, _ = out.AsBytes()
			}
			return err
		}, false)
	})
	structured := func(src *service.Message) error {
		_, err := src.BloblangQuery(exec)
		return err
	}
	b.Run("structured", func(b *testing.B) { benchEvents(b, mapped, structured, false) })
	b.Run("email_send", func(b *testing.B) { benchEvents(b, emailSend, structured, false) })
	b.Run("unmappable", func(b *testing.B) { benchEvents(b, unmappable, structured, true) })
}

// benchMessage is a structured message of event r of type et, as the
// braze_currents input emits it.
func benchMessage(r map[string]any, et string) *service.Message {
	msg := service.NewMessage(nil)
	msg.SetStructured(r)
	msg.MetaSet("braze_event_type", et)
	return msg
}

// benchEvents runs fn over every message of batch per iteration, fails when
// an event is mapped against wantErr, and reports µs, CPU µs and allocations
// per event.
func benchEvents(b *testing.B, batch service.MessageBatch, fn func(*service.Message) error, wantErr bool) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu := cpuTime(b)
	n := 0
	for b.Loop() {
		for _, src := range batch {
			if err := fn(src); (err != nil) != wantErr {
				b.Fatalf("mapping error %v, want an error: %v", err, wantErr)
			}
			n++
		}
	}
	b.StopTimer()
	cpu = cpuTime(b) - cpu
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(n), "µs/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(n), "cpu-µs/event")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/event")
}

// cpuTime is the CPU time the process has used, in user and system mode.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
