package segment

import "github.com/redpanda-data/benthos/v4/public/service"

type metrics struct {
	sent     *service.MetricCounter
	failed   *service.MetricCounter
	batches  *service.MetricCounter
	requests *service.MetricCounter
	retries  *service.MetricCounter
	latency  *service.MetricTimer
}

func newMetrics(m *service.Metrics) metrics {
	return metrics{
		sent:     m.NewCounter("segment_calls_sent"),
		failed:   m.NewCounter("segment_calls_failed", "cause"),
		batches:  m.NewCounter("segment_batches"),
		requests: m.NewCounter("segment_requests", "status"),
		retries:  m.NewCounter("segment_retries"),
		latency:  m.NewTimer("segment_request_latency_ns"),
	}
}
