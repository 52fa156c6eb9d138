package segment

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
)

type metrics struct {
	sent     *tally
	failed   *tally // by cause
	batches  *service.MetricCounter
	requests *service.MetricCounter
	retries  *service.MetricCounter
	latency  *service.MetricTimer
}

func newMetrics(m *service.Metrics) metrics {
	ms := metrics{
		sent:     newTally(m.NewCounter("segment_calls_sent")),
		failed:   newTally(m.NewCounter("segment_calls_failed", "cause")),
		batches:  m.NewCounter("segment_batches"),
		requests: m.NewCounter("segment_requests", "status"),
		retries:  m.NewCounter("segment_retries"),
		latency:  m.NewTimer("segment_request_latency_ns"),
	}
	ms.startAtZero()
	return ms
}

// startAtZero creates each counter's series at 0, for every label value
// known in advance: rate() and increase() miss the first count of a series
// that appears already at 1, so a first burst would show as nothing and
// alert on nothing. The statuses of segment_requests are whatever Segment
// answers, so they appear on first use.
func (m metrics) startAtZero() {
	m.sent.c.Incr(0)
	for _, cause := range failedCauses {
		m.failed.c.Incr(0, cause)
	}
	m.batches.Incr(0)
	m.retries.Incr(0)
}

// tally is a metric counter that also keeps its totals, by label value, for
// the summary the output logs when it closes: one count serves both.
type tally struct {
	c  *service.MetricCounter
	mu sync.Mutex
	by map[string]int64 // by the first label value; "" for none
}

func newTally(c *service.MetricCounter) *tally {
	return &tally{c: c, by: map[string]int64{}}
}

func (t *tally) Incr(n int64, labelValues ...string) {
	t.c.Incr(n, labelValues...)
	key := ""
	if len(labelValues) > 0 {
		key = labelValues[0]
	}
	t.mu.Lock()
	t.by[key] += n
	t.mu.Unlock()
}

// total is the sum over every label value.
func (t *tally) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return sumCounts(t.by)
}

func sumCounts(by map[string]int64) int64 {
	var n int64
	for _, v := range by {
		n += v
	}
	return n
}

// counts are the totals by label value.
func (t *tally) counts() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.by)
}

// String lists the non-zero counts by label value, "invalid 2, rejected 1".
func (t *tally) String() string { return formatCounts(t.counts()) }

func formatCounts(by map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		if by[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// subtract is cur less last, by key.
func subtract(cur, last map[string]int64) map[string]int64 {
	d := make(map[string]int64, len(cur))
	for k, v := range cur {
		d[k] = v - last[k]
	}
	return d
}
