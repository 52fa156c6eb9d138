// Package promscrape reads a Prometheus /metrics scrape in tests.
package promscrape

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/currents-connect/currents-connect/plugin/prometheus"
)

// Resources are resources exporting to this distribution's prometheus
// exporter, with the processor resources of processors (YAML documents, each
// with a label), and the URL of their /metrics, served over HTTP on
// loopback. Components built with them (a spec's ParseYAML, then the
// component's constructor) export there as in a stream.
func Resources(t testing.TB, processors ...string) (*service.Resources, string) {
	t.Helper()
	return LoggingResources(t, nil, processors...)
}

// LoggingResources are Resources whose components log to log (when not nil).
func LoggingResources(t testing.TB, log *slog.Logger, processors ...string) (*service.Resources, string) {
	t.Helper()
	b := service.NewResourceBuilder()
	if log != nil {
		b.SetLogger(log)
	}
	mux := http.NewServeMux()
	b.SetHTTPMux(mux)
	if err := b.SetMetricsYAML("prometheus: {add_process_metrics: false, add_go_metrics: false}"); err != nil {
		t.Fatal(err)
	}
	for _, p := range processors {
		if err := b.AddProcessorYAML(p); err != nil {
			t.Fatal(err)
		}
	}
	res, stop, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(context.Background()) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return res, srv.URL + "/metrics"
}

// Scrape is a parsed scrape, by metric family name.
type Scrape map[string]*dto.MetricFamily

// Get fetches url and parses it, failing t if it cannot.
func Get(t testing.TB, url string) Scrape {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s answered %d", url, res.StatusCode)
	}
	families, err := Parse(res.Body)
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return families
}

// Parse reads a scrape as classic Prometheus servers read it (metric and
// label names of the legacy charset), so that a name they would refuse
// fails the test that exports it.
func Parse(r io.Reader) (Scrape, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(r)
}

// Counter is the sum of the counter name's samples whose label is value
// (any samples, with label ""), and whether there is one.
func (s Scrape) Counter(name, label, value string) (float64, bool) {
	f := s[name]
	if f == nil || f.GetType() != dto.MetricType_COUNTER {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range f.GetMetric() {
		if label == "" || hasLabel(m, label, value) {
			sum, found = sum+m.GetCounter().GetValue(), true
		}
	}
	return sum, found
}

// Gauge is the value of the gauge name's first sample, and whether there is
// one.
func (s Scrape) Gauge(name string) (float64, bool) {
	f := s[name]
	if f == nil || f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) == 0 {
		return 0, false
	}
	return f.GetMetric()[0].GetGauge().GetValue(), true
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// Series is a counter's series: a name, and a label with its value or none.
type Series struct{ Name, Label, Value string }

// WantZero fails t for each series of want that s lacks or has at other than 0.
func WantZero(t testing.TB, s Scrape, want []Series) {
	t.Helper()
	for _, w := range want {
		if v, ok := s.Counter(w.Name, w.Label, w.Value); !ok || v != 0 {
			t.Errorf("%s{%s=%q}: %v (present %v), want a series at 0", w.Name, w.Label, w.Value, v, ok)
		}
	}
}
