// Package prometheus registers a `prometheus` metrics exporter: Connect's
// metrics and ours, served at /metrics on Connect's HTTP server.
package prometheus

import (
	"context"
	"net/http"
	"strings"
	"sync"

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
distribution's components (`+"`braze_currents_*`"+`, `+"`segment_*`"+`). Counters become Prometheus counters,
gauges gauges, and timers histograms in seconds: a timer named `+"`x_ns`"+` is exported as `+"`x_seconds`"+`.
Built with `+"`github.com/prometheus/client_golang`"+`.
`).
		Fields(
			service.NewStringField(fieldPrefix).
				Description("A prefix for every metric name, such as `currents_connect_`.").Default(""),
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

// vector returns the collector registered under name, creating it with make
// the first time. A later request with other label keys gets nil: Prometheus
// cannot hold both, and the first one wins.
func (e *exporter) vector(name string, labels []string, make func(string) prometheus.Collector) prometheus.Collector {
	name = sanitize(e.prefix + name)
	key := name + "{" + strings.Join(labels, ",") + "}"
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.vecs[key]; ok {
		return c
	}
	if _, clash := e.vecs[name]; clash {
		e.log.Warnf("Metric %s requested with labels %v after other labels: not exported", name, labels)
		return nil
	}
	c := make(name)
	if err := e.registry.Register(c); err != nil {
		e.log.Warnf("Metric %s not exported: %v", name, err)
		return nil
	}
	e.vecs[key], e.vecs[name] = c, c
	return c
}

func (e *exporter) NewCounterCtor(name string, labels ...string) service.MetricsExporterCounterCtor {
	vec, _ := e.vector(name, labels, func(n string) prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: n, Help: "Connect counter " + n}, sanitizeAll(labels))
	}).(*prometheus.CounterVec)
	return func(values ...string) service.MetricsExporterCounter {
		if vec == nil {
			return noop{}
		}
		return counter{vec.WithLabelValues(values...)}
	}
}

func (e *exporter) NewTimerCtor(name string, labels ...string) service.MetricsExporterTimerCtor {
	vec, _ := e.vector(strings.TrimSuffix(name, "_ns")+"_seconds", labels, func(n string) prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n, Help: "Connect timer " + n + ", in seconds", Buckets: e.buckets}, sanitizeAll(labels))
	}).(*prometheus.HistogramVec)
	return func(values ...string) service.MetricsExporterTimer {
		if vec == nil {
			return noop{}
		}
		return timer{vec.WithLabelValues(values...)}
	}
}

func (e *exporter) NewGaugeCtor(name string, labels ...string) service.MetricsExporterGaugeCtor {
	vec, _ := e.vector(name, labels, func(n string) prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: "Connect gauge " + n}, sanitizeAll(labels))
	}).(*prometheus.GaugeVec)
	return func(values ...string) service.MetricsExporterGauge {
		if vec == nil {
			return noop{}
		}
		return gauge{vec.WithLabelValues(values...)}
	}
}

// HandlerFunc serves the metrics; Connect mounts it at /metrics and /stats.
func (e *exporter) HandlerFunc() http.HandlerFunc {
	return promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{}).ServeHTTP
}

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

// sanitize makes a name Prometheus accepts: letters, digits and underscores.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, name)
}

func sanitizeAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = sanitize(n)
	}
	return out
}
