package prometheus

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newTestExporter(t *testing.T, yaml string) *exporter {
	t.Helper()
	conf, err := exporterSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := exporterFromParsed(conf, service.MockResources().Logger())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func scrape(t *testing.T, e *exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestExporterServesEveryKind(t *testing.T) {
	e := newTestExporter(t, `prefix: cc_`)
	e.NewCounterCtor("segment_calls_failed", "cause")("rejected").Incr(3)
	// Connect asks again for the same metric from another component: same series.
	e.NewCounterCtor("segment_calls_failed", "cause")("rejected").Incr(2)
	e.NewGaugeCtor("braze_currents_checkpoint_lag_seconds")().Set(42)
	e.NewTimerCtor("segment_request_latency_ns")().Timing(250_000_000)
	e.NewCounterCtor("input.received", "label", "path")("", "root.input").Incr(1)
	out := scrape(t, e)
	for _, want := range []string{
		`cc_segment_calls_failed{cause="rejected"} 5`,
		`cc_braze_currents_checkpoint_lag_seconds 42`,
		`cc_segment_request_latency_seconds_bucket{le="0.25"} 1`,
		`cc_segment_request_latency_seconds_sum 0.25`,
		`cc_input_received{label="",path="root.input"} 1`,
		`process_resident_memory_bytes`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q:\n%s", want, out)
		}
	}
}

func TestExporterRefusesConflictingLabelsQuietly(t *testing.T) {
	e := newTestExporter(t, `{add_process_metrics: false, add_go_metrics: false}`)
	e.NewCounterCtor("x", "a")("1").Incr(1)
	e.NewCounterCtor("x", "b")("2").Incr(5) // cannot coexist: dropped, not a panic
	out := scrape(t, e)
	if !strings.Contains(out, `x{a="1"} 1`) || strings.Contains(out, `b="2"`) || strings.Contains(out, "go_goroutines") {
		t.Fatalf("scrape:\n%s", out)
	}
}

func TestExporterRefusesBucketsOutOfOrder(t *testing.T) {
	for _, buckets := range []string{`[1, 0.5]`, `[0.1, 0.1]`} {
		conf, err := exporterSpec().ParseYAML(`histogram_buckets: `+buckets, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = exporterFromParsed(conf, service.MockResources().Logger())
		if err == nil || !strings.Contains(err.Error(), fieldBuckets) {
			t.Errorf("%s: error %v, want one naming %s", buckets, err, fieldBuckets)
		}
	}
}

func TestExporterScrapeOutlivesACollision(t *testing.T) {
	// The Go collector's summary go_gc_duration_seconds has a sample of this
	// name: the scrape loses one of the two, not everything.
	e := newTestExporter(t, `{}`)
	e.NewCounterCtor("go_gc_duration_seconds_count")().Incr(1)
	e.NewCounterCtor("segment_retries")().Incr(1)
	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "\nsegment_retries 1\n") {
		t.Fatalf("/metrics answered %d:\n%s", rec.Code, rec.Body)
	}
}

func TestExporterWarnsOfAMetricOfAnotherKind(t *testing.T) {
	conf, err := exporterSpec().ParseYAML(`{add_process_metrics: false, add_go_metrics: false}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	e, err := exporterFromParsed(conf, service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	e.NewCounterCtor("twice")().Incr(1)
	e.NewGaugeCtor("twice")().Set(7) // cannot coexist: dropped, and said so
	if out := scrape(t, e); !strings.Contains(out, "\ntwice 1\n") {
		t.Fatalf("scrape:\n%s", out)
	}
	if !strings.Contains(logs.String(), "twice") {
		t.Fatalf("no warning names twice; logs:\n%s", logs.String())
	}
}
