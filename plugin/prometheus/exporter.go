// Package prometheus registers a `prometheus` metrics exporter: Connect's
// metrics and ours, served at /metrics on Connect's HTTP server.
package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	fieldPrefix         = "prefix"
	fieldProcessMetrics = "add_process_metrics"
	fieldGoMetrics      = "add_go_metrics"
	fieldBuckets        = "histogram_buckets"
)

func exporterSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Serves metrics in the Prometheus text format at `/metrics` (and `/stats`) on Connect's HTTP server.").
		Description(`
Every metric of the pipeline is exported: Connect's own (`+"`input_received`"+`, `+"`output_sent`"+`,
`+"`output_error`"+`, latencies, …, labelled by component `+"`label`"+` and `+"`path`"+`) and those of this
distribution's components (`+"`braze_currents_*`"+`, `+"`segment_*`"+`, and the counters `+"`braze_currents_count`"+` keeps,
`+"`currents_*`"+` in the shipped configs). Counters become Prometheus counters,
gauges gauges, and timers histograms in seconds: a timer named `+"`x_ns`"+` is exported as `+"`x_seconds`"+`.
Label values that are not UTF-8 are exported with U+FFFD in their place. A metric Prometheus cannot hold
next to one already exported (the same name with other labels or of another kind, a name of a histogram's
`+"`_bucket`"+`, `+"`_sum`"+` or `+"`_count`"+` samples, a timer labelled `+"`le`"+`) is not exported, with a warning.
Built with `+"`github.com/prometheus/client_golang`"+`.
`).
		Fields(
			service.NewStringField(fieldPrefix).
				Description("A prefix for the name of every metric of the pipeline, such as `currents_connect_` (not for `process_*` and `go_*`).").Default(""),
			service.NewBoolField(fieldProcessMetrics).
				Description("Also export the process's CPU, memory and file descriptor metrics (`process_*`).").Default(true),
			service.NewBoolField(fieldGoMetrics).
				Description("Also export the Go runtime's metrics (`go_*`).").Default(true),
			service.NewFloatListField(fieldBuckets).
				Description("Histogram buckets for timers, in seconds.").
				Default([]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}).Advanced(),
		)
}

func init() {
	service.MustRegisterMetricsExporter("prometheus", exporterSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			return exporterFromParsed(conf, log)
		})
}

func exporterFromParsed(conf *service.ParsedConfig, log *service.Logger) (*exporter, error) {
	e := &exporter{registry: prometheus.NewRegistry(), log: log, vecs: map[string]prometheus.Collector{}}
	var err error
	if e.prefix, err = conf.FieldString(fieldPrefix); err != nil {
		return nil, err
	}
	if e.buckets, err = conf.FieldFloatList(fieldBuckets); err != nil {
		return nil, err
	}
	// Prometheus would panic at the first timing instead.
	for i := 1; i < len(e.buckets); i++ {
		if e.buckets[i] <= e.buckets[i-1] {
			return nil, fmt.Errorf("%s must increase: %v follows %v", fieldBuckets, e.buckets[i], e.buckets[i-1])
		}
	}
	if withProcess, err := conf.FieldBool(fieldProcessMetrics); err != nil {
		return nil, err
	} else if withProcess {
		e.registry.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if withGo, err := conf.FieldBool(fieldGoMetrics); err != nil {
		return nil, err
	} else if withGo {
		e.registry.MustRegister(collectors.NewGoCollector())
	}
	return e, nil
}

// exporter keeps one Prometheus vector per metric name: Connect asks for the
// same metric once per component that reports it.
type exporter struct {
	registry *prometheus.Registry
	log      *service.Logger
	prefix   string
	buckets  []float64

	mu   sync.Mutex
	vecs map[string]prometheus.Collector
}

// histogramSuffixes name the samples of a histogram x: x_bucket, x_sum and
// x_count. No other metric may have those names, or the scrape fails.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// vector returns the vector registered under name, creating it with newVec
// the first time. It returns nil, and warns, when Prometheus cannot hold it
// next to the others: the same name with other label names or of another
// kind, or a name of a histogram's samples. The first one wins.
func vector[V prometheus.Collector](e *exporter, name string, labels []string, newVec func(string, []string) V) V {
	var none V
	name, labels = sanitize(e.prefix+name), sanitizeLabels(labels)
	key := name + "{" + strings.Join(labels, ",") + "}"
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.vecs[key]; ok {
		v, ok := c.(V)
		if !ok {
			e.log.Warnf("Metric %s requested as another kind than it was first: not exported", name)
		}
		return v
	}
	if _, clash := e.vecs[name]; clash {
		e.log.Warnf("Metric %s requested with labels %v after other labels: not exported", name, labels)
		return none
	}
	_, isHistogram := any(none).(*prometheus.HistogramVec)
	for _, suffix := range histogramSuffixes {
		base, ok := strings.CutSuffix(name, suffix)
		if _, clash := e.vecs[name+suffix]; isHistogram && clash || ok && isHistogramVec(e.vecs[base]) {
			e.log.Warnf("Metric %s collides with the samples of a histogram: not exported", name)
			return none
		}
	}
	v := newVec(name, labels)
	if err := e.registry.Register(v); err != nil {
		e.log.Warnf("Metric %s not exported: %v", name, err)
		return none
	}
	e.vecs[key], e.vecs[name] = v, v
	return v
}

func isHistogramVec(c prometheus.Collector) bool {
	_, ok := c.(*prometheus.HistogramVec)
	return ok
}

func (e *exporter) NewCounterCtor(name string, labels ...string) service.MetricsExporterCounterCtor {
	vec := vector(e, name, labels, func(n string, l []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: n, Help: "Connect counter " + n}, l)
	})
	return func(values ...string) service.MetricsExporterCounter {
		if vec == nil {
			return noop{}
		}
		return counter{vec.WithLabelValues(validUTF8(values)...)}
	}
}

func (e *exporter) NewTimerCtor(name string, labels ...string) service.MetricsExporterTimerCtor {
	name = strings.TrimSuffix(name, "_ns") + "_seconds"
	if slices.Contains(sanitizeLabels(labels), "le") {
		e.log.Warnf("Metric %s has a label le, the label of its buckets: not exported", name)
		return func(...string) service.MetricsExporterTimer { return noop{} }
	}
	vec := vector(e, name, labels, func(n string, l []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n, Help: "Connect timer " + n + ", in seconds", Buckets: e.buckets}, l)
	})
	return func(values ...string) service.MetricsExporterTimer {
		if vec == nil {
			return noop{}
		}
		return timer{vec.WithLabelValues(validUTF8(values)...)}
	}
}

func (e *exporter) NewGaugeCtor(name string, labels ...string) service.MetricsExporterGaugeCtor {
	vec := vector(e, name, labels, func(n string, l []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: "Connect gauge " + n}, l)
	})
	return func(values ...string) service.MetricsExporterGauge {
		if vec == nil {
			return noop{}
		}
		return gauge{vec.WithLabelValues(validUTF8(values)...)}
	}
}

// HandlerFunc serves the metrics; Connect mounts it at /metrics and /stats.
// A metric that cannot be gathered is left out with a warning, rather than
// failing the whole scrape.
func (e *exporter) HandlerFunc() http.HandlerFunc {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: warnLog{e.log}}
	return promhttp.HandlerFor(e.registry, opts).ServeHTTP
}

// warnLog logs promhttp's errors as warnings.
type warnLog struct{ log *service.Logger }

func (w warnLog) Println(v ...any) { w.log.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e *exporter) Close(context.Context) error { return nil }

type counter struct{ c prometheus.Counter }

func (c counter) Incr(n int64)          { c.c.Add(float64(n)) }
func (c counter) IncrFloat64(n float64) { c.c.Add(n) }

type timer struct{ o prometheus.Observer }

func (t timer) Timing(ns int64) { t.o.Observe(float64(ns) / 1e9) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Set(v int64)           { g.g.Set(float64(v)) }
func (g gauge) SetFloat64(v float64)  { g.g.Set(v) }
func (g gauge) Incr(n int64)          { g.g.Add(float64(n)) }
func (g gauge) IncrFloat64(n float64) { g.g.Add(n) }
func (g gauge) Decr(n int64)          { g.g.Sub(float64(n)) }
func (g gauge) DecrFloat64(n float64) { g.g.Sub(n) }

type noop struct{}

func (noop) Incr(int64)          {}
func (noop) IncrFloat64(float64) {}
func (noop) Timing(int64)        {}
func (noop) Set(int64)           {}
func (noop) SetFloat64(float64)  {}
func (noop) Decr(int64)          {}
func (noop) DecrFloat64(float64) {}

// sanitize makes a metric name Prometheus accepts: letters, digits,
// underscores and colons.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, name)
}

// validUTF8 replaces what is not UTF-8 in label values, which can come from
// the data, with U+FFFD: Prometheus refuses such values with a panic.
func validUTF8(values []string) []string {
	for i, v := range values {
		if !utf8.ValidString(v) {
			fixed := slices.Clone(values)
			for j := i; j < len(fixed); j++ {
				fixed[j] = strings.ToValidUTF8(fixed[j], "\uFFFD")
			}
			return fixed
		}
	}
	return values
}

// sanitizeLabels makes label names Prometheus accepts: as sanitize, without
// the colons only metric names may have.
func sanitizeLabels(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ReplaceAll(sanitize(n), ":", "_")
	}
	return out
}
