package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// countResources builds processor resources (YAML documents, each with a
// label) with this distribution's prometheus exporter, and serves its
// /metrics over HTTP on loopback. It returns the resources and the URL of
// /metrics.
func countResources(t testing.TB, processors ...string) (*service.Resources, string) {
	t.Helper()
	return promscrape.Resources(t, processors...)
}

// runCount runs batch through the processor resource label.
func runCount(t testing.TB, res *service.Resources, label string, batch service.MessageBatch) []service.MessageBatch {
	t.Helper()
	var out []service.MessageBatch
	var perr error
	if err := res.AccessProcessor(context.Background(), label, func(p *service.ResourceProcessor) {
		out, perr = p.ProcessBatch(context.Background(), batch)
	}); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	return out
}

// countsByType scrapes url and returns each counter's values by event_type.
func countsByType(t *testing.T, url string) map[string]map[string]float64 {
	t.Helper()
	return countsByLabel(t, url, eventTypeLabel)
}

// countsByLabel scrapes url and returns each counter's values by label.
func countsByLabel(t *testing.T, url, label string) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for name, f := range promscrape.Get(t, url) {
		if f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					if out[name] == nil {
						out[name] = map[string]float64{}
					}
					out[name][l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// event is a message of eventType (no metadata when "-"), errored when
// failed.
func event(eventType string, failed bool) *service.Message {
	m := service.NewMessage([]byte(`{}`))
	if eventType != "-" {
		m.MetaSetMut(MetaEventType, eventType)
	}
	if failed {
		m.SetError(errors.New("cannot be mapped"))
	}
	return m
}

// sameMessage reports whether a and b have the same content, event type
// and error.
func sameMessage(a, b *service.Message) bool {
	ab, aErr := a.AsBytes()
	bb, bErr := b.AsBytes()
	at, aFound := a.MetaGet(MetaEventType)
	bt, bFound := b.MetaGet(MetaEventType)
	return aErr == nil && bErr == nil && string(ab) == string(bb) && at == bt && aFound == bFound && errors.Is(a.GetError(), b.GetError())
}

func TestCountProcessorCountsByTypeAndError(t *testing.T) {
	res, url := countResources(t,
		"label: mapped\nbraze_currents_count: {name: events_mapped, errored_name: events_unmappable}",
		"label: dead\nbraze_currents_count: {name: dead_letters}")
	batches := []service.MessageBatch{
		{event("users.messages.email.Send", false), event("users.messages.sms.Delivery", false), event("users.messages.email.Send", true),
			event("users.messages.email.Send", false), event("-", false), event("", true), event("users.messages.sms.Delivery", false)},
		{event("users.messages.email.Send", false), event("users.messages.email.Send", false)},
		{},
	}
	for _, batch := range batches {
		for _, label := range []string{"mapped", "dead"} {
			out := runCount(t, res, label, batch)
			if len(out) != 1 || len(out[0]) != len(batch) {
				t.Fatalf("%s: %d messages in %d batches out of %d in", label, len(out[0]), len(out), len(batch))
			}
			for i, m := range out[0] {
				if !sameMessage(m, batch[i]) {
					t.Errorf("%s: message %d changed", label, i)
				}
			}
		}
	}
	got := countsByType(t, url)
	want := map[string]map[string]float64{
		"events_mapped":     {"users.messages.email.Send": 4, "users.messages.sms.Delivery": 2, unknownEventType: 1},
		"events_unmappable": {"users.messages.email.Send": 1, unknownEventType: 1},
		"dead_letters":      {"users.messages.email.Send": 5, "users.messages.sms.Delivery": 2, unknownEventType: 2},
	}
	if len(got) != len(want) {
		t.Errorf("counters %v, want %v", got, want)
	}
	for name, types := range want {
		if len(got[name]) != len(types) {
			t.Errorf("%s: %v, want %v", name, got[name], types)
		}
		for et, n := range types {
			if got[name][et] != n {
				t.Errorf("%s{event_type=%q} = %v, want %v", name, et, got[name][et], n)
			}
		}
	}
}

func TestCountProcessorNeedsAName(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`name: ""`, "name is empty"},
		{`errored_name: events_unmappable`, "name"},
	} {
		conf, err := countProcessorSpec().ParseYAML(c.yaml, nil)
		if err == nil {
			_, err = countProcessorFromParsed(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.yaml, err, c.want)
		}
	}
}

// BenchmarkCountProcessor compares, per message, the counters of the shipped
// configs with the metric processors they replace (a counter before the
// mapping, a switch on errored() with a counter in each case after it), on
// batches of 100 events of one type as the braze_currents input hands them,
// 1 in 100 errored, into this distribution's prometheus exporter. A noop
// processor gives what Connect's processor plumbing costs alone.
func BenchmarkCountProcessor(b *testing.B) {
	res, _ := countResources(b, "label: noop\nnoop: {}",
		"label: braze_currents_count\nbraze_currents_count: {name: events_mapped, errored_name: events_unmappable}",
		`label: metric_processors
processors:
  - metric:
      type: counter
      name: events_in
      labels:
        event_type: ${! @braze_event_type.or("unknown") }
  - switch:
      - check: errored()
        processors:
          - metric:
              type: counter
              name: events_unmappable
              labels:
                event_type: ${! @braze_event_type.or("unknown") }
      - processors:
          - metric:
              type: counter
              name: events_mapped
              labels:
                event_type: ${! @braze_event_type.or("unknown") }
`)
	batch := make(service.MessageBatch, 100)
	for i := range batch {
		batch[i] = event("users.messages.email.Send", i == 50)
	}
	for _, name := range []string{"noop", "braze_currents_count", "metric_processors"} {
		b.Run(name, func(b *testing.B) {
			if err := res.AccessProcessor(context.Background(), name, func(p *service.ResourceProcessor) {
				for b.Loop() {
					if _, err := p.ProcessBatch(context.Background(), batch); err != nil {
						b.Fatal(err)
					}
				}
			}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/msg")
		})
	}
	// The processor's own work, without Connect's wrapping of a plugin
	// processor (a message wrapper and a tracing span per message).
	b.Run("braze_currents_count_unwrapped", func(b *testing.B) {
		conf, err := countProcessorSpec().ParseYAML("{name: events_mapped, errored_name: events_unmappable}", nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := countProcessorFromParsed(conf, res)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := p.ProcessBatch(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/msg")
	})
}

// TestTallyManyTypes: a tally counts right past the types it scans for,
// where a map takes over (a batch of many types costs linear time).
func TestTallyManyTypes(t *testing.T) {
	var tl tally
	want := map[string]int64{}
	for i := range 3 * tallyScan * 10 {
		et := fmt.Sprintf("t%d", i%(3*tallyScan))
		tl = tl.add(et)
		want[et]++
	}
	got := map[string]int64{}
	for _, tc := range tl.counts {
		if _, dup := got[tc.eventType]; dup {
			t.Fatalf("%s counted twice", tc.eventType)
		}
		got[tc.eventType] = tc.n
	}
	if !maps.Equal(got, want) {
		t.Fatalf("tally %v, want %v", got, want)
	}
}

// Types outside Braze's known ones get series of their own up to a bound,
// then count as "other": they can come from request bodies (Custom HTTP
// with other_event_types send), and each distinct string was a series held
// for the life of the process. Known types always keep theirs, and every
// message is counted.
func TestCountProcessorBoundsUnknownTypes(t *testing.T) {
	res, url := countResources(t, "label: mapped\nbraze_currents_count: {name: events_mapped}")
	const invented = 3 * maxOtherTypeLabels
	for i := range invented {
		runCount(t, res, "mapped", service.MessageBatch{event(fmt.Sprintf("invented.%d", i), false), event("users.messages.email.Send", false)})
	}
	got := countsByType(t, url)["events_mapped"]
	if n := len(got); n != maxOtherTypeLabels+2 {
		t.Errorf("%d series, want %d invented types, other and the known type", n, maxOtherTypeLabels)
	}
	if got["users.messages.email.Send"] != invented {
		t.Errorf("known type counted %v, want %d", got["users.messages.email.Send"], invented)
	}
	if got[otherEventType] != invented-maxOtherTypeLabels {
		t.Errorf("other counted %v, want %d", got[otherEventType], invented-maxOtherTypeLabels)
	}
	total := 0.0
	for _, n := range got {
		total += n
	}
	if total != 2*invented {
		t.Errorf("%v messages counted, want %d", total, 2*invented)
	}
}

// A malformed Custom HTTP event keeps its event_type, of any length up to
// max_body_size, and goes to the unmappable and dead letter counters: each
// long type given a series of its own held its bytes for the life of the
// process, and rendered them at every scrape (64 of 8 MiB: half a
// gigabyte). Types longer than any Braze type count as other, without
// taking one of the bounded places.
func TestCountProcessorCountsLongUnknownTypesAsOther(t *testing.T) {
	res, url := countResources(t, "label: mapped\nbraze_currents_count: {name: events_mapped, errored_name: events_unmappable}")
	const long = 8
	for i := range long {
		runCount(t, res, "mapped", service.MessageBatch{event(fmt.Sprintf("%d.%s", i, strings.Repeat("x", 256<<10)), true)})
	}
	runCount(t, res, "mapped", service.MessageBatch{event("users.messages.email.NewType", true)})
	scraped, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(scraped.Body)
	scraped.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > 64<<10 {
		t.Errorf("the scrape is %d bytes, want under 64 KiB", len(body))
	}
	got := countsByType(t, url)["events_unmappable"]
	want := map[string]float64{otherEventType: long, "users.messages.email.NewType": 1}
	if !maps.Equal(got, want) {
		t.Errorf("events_unmappable: %d series, other %v, the new type %v; want other %d and the new type 1",
			len(got), got[otherEventType], got["users.messages.email.NewType"], long)
	}
}
