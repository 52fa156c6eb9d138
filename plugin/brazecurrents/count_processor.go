package brazecurrents

import (
	"context"
	"fmt"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	countFieldName        = "name"
	countFieldErroredName = "errored_name"
)

// The label of the counters by event type, and its value for a message
// without MetaEventType.
const (
	eventTypeLabel   = "event_type"
	unknownEventType = "unknown"
)

func countProcessorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Counts messages by Currents event type into a counter labelled `event_type`, and passes them on unchanged.").
		Description(`
Each message counts once, under its `+"`braze_event_type`"+` metadata (set by the `+"`braze_currents`"+` and
`+"`braze_currents_http`"+` inputs; `+"`unknown`"+` when a message has none or it is empty): in the counter `+"`errored_name`"+` when it
carries an error (from a failed mapping, or a malformed event the `+"`braze_currents_http`"+` input sent on flagged: after
the shipped mapping, `+"`currents_events_unmappable`"+` counts those too) and that field is set, in the counter `+"`name`"+` otherwise.
Types outside Braze's known ones get series of their own for the first 64 of them; later ones count under
`+"`other`"+` (with one warning), as types from request bodies could otherwise make series without end. So does
any such type over 128 bytes (a malformed event's `+"`event_type`"+` may be megabytes long, and its series would
hold it for good and print it at every scrape).

It counts what a `+"`metric`"+` processor with `+"`labels: {event_type: ${! @braze_event_type }}`"+` counts, for a
fraction of the cost: the counts are added up per batch, and each counter is incremented once per event type
of the batch instead of once per message with an interpolated label.`).
		Fields(
			service.NewStringField(countFieldName).
				Description("The counter of the messages without an error; of every message when `"+countFieldErroredName+"` is empty.").
				Examples("currents_events_mapped", "currents_dead_letters"),
			service.NewStringField(countFieldErroredName).
				Description("The counter of the messages with an error. Empty: they count under `"+countFieldName+"` too.").
				Default("").
				Examples("currents_events_unmappable"),
		).
		Example("Mapped and unmappable events",
			"After a mapping, count the events it mapped and those it failed on; the events it deleted are no longer in the batch.",
			`pipeline:
  processors:
    - mapping: |
        import "./bloblang/currents_to_segment.blobl"
        root = {"event": this, "event_type": @braze_event_type}.apply("currents_to_segment")
    - braze_currents_count:
        name: currents_events_mapped
        errored_name: currents_events_unmappable
`).
		Example("Dead letters",
			"In the processors of a dead letter output, count every message it gets, errored or not.",
			`output:
  fallback:
    - reject_errored:
        segment:
          write_key: "${SEGMENT_WRITE_KEY}"
    - file:
        path: ./dead-letter.jsonl
        codec: lines
      processors:
        - braze_currents_count:
            name: currents_dead_letters
`)
}

func init() {
	service.MustRegisterBatchProcessor("braze_currents_count", countProcessorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return countProcessorFromParsed(conf, mgr)
		})
}

func countProcessorFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*countProcessor, error) {
	name, err := conf.FieldString(countFieldName)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s is empty: name the counter", countFieldName)
	}
	erroredName, err := conf.FieldString(countFieldErroredName)
	if err != nil {
		return nil, err
	}
	p := &countProcessor{ok: mgr.Metrics().NewCounter(name, eventTypeLabel),
		labels: &typeLabels{maxOthers: maxOtherTypeLabels, log: mgr.Logger()}}
	if erroredName != "" {
		p.errored = mgr.Metrics().NewCounter(erroredName, eventTypeLabel)
	}
	return p, nil
}

// countProcessor counts messages by event type into ok, or into errored
// (when set) those carrying an error.
type countProcessor struct {
	ok, errored *service.MetricCounter
	labels      *typeLabels
}

// maxOtherTypeLabels is how many types outside knownEventTypes the
// processor's counters give series of their own: Braze adds a type now and
// then, and those deserve theirs.
const maxOtherTypeLabels = 64

// maxTypeLabelLen is the longest type outside knownEventTypes given a series
// of its own, in bytes: over twice Braze's longest (51). A malformed Custom
// HTTP event keeps its event_type, which may be megabytes long, and its
// series would hold those bytes for good and print them at every scrape.
const maxTypeLabelLen = 128

func (p *countProcessor) ProcessBatch(_ context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	var okBuf, erroredBuf [4]typeCount
	ok, errored := tally{counts: okBuf[:0]}, tally{counts: erroredBuf[:0]}
	for _, m := range batch {
		eventType, _ := m.MetaGet(MetaEventType) // "" when none: labelled unknownEventType
		if p.errored != nil && m.GetError() != nil {
			errored = errored.add(eventType)
		} else {
			ok = ok.add(eventType)
		}
	}
	ok.flush(p.ok, p.labels)
	errored.flush(p.errored, p.labels)
	return []service.MessageBatch{batch}, nil
}

func (p *countProcessor) Close(context.Context) error { return nil }

// tally adds up events per type, so that a counter labelled event_type is
// incremented once per type of a batch: each increment looks the labelled
// series up in the exporter, which costs more than reading a message's
// type. A batch rarely holds more than a few types (the braze_currents
// input's hold one), so a slice searched from its end beats a map; past
// tallyScan types, a map indexes the slice, so that a batch of many types
// costs time linear in its size, not quadratic.
type tally struct {
	counts []typeCount
	index  map[string]int // of counts, once it holds more than tallyScan types
}

const tallyScan = 8

type typeCount struct {
	eventType string
	n         int64
}

func (t tally) add(eventType string) tally {
	if t.index != nil {
		if i, ok := t.index[eventType]; ok {
			t.counts[i].n++
			return t
		}
		t.index[eventType] = len(t.counts)
		t.counts = append(t.counts, typeCount{eventType, 1})
		return t
	}
	for i := len(t.counts) - 1; i >= 0; i-- {
		if t.counts[i].eventType == eventType {
			t.counts[i].n++
			return t
		}
	}
	t.counts = append(t.counts, typeCount{eventType, 1})
	if len(t.counts) > tallyScan {
		t.index = make(map[string]int, 2*len(t.counts))
		for i, tc := range t.counts {
			t.index[tc.eventType] = i
		}
	}
	return t
}

// flush increments c by each type's count, under the type's label; a nil c
// counts nothing.
func (t tally) flush(c *service.MetricCounter, labels *typeLabels) {
	if c == nil {
		return
	}
	for _, tc := range t.counts {
		c.Incr(tc.n, labels.label(tc.eventType))
	}
}

// typeLabels gives event types their event_type label values, so that a
// counter's series stay bounded: types can come from request bodies (Custom
// HTTP), and each distinct string would otherwise be a series held for the
// life of the process. Known types keep their own label, no type ("") is
// unknownEventType, the first maxOthers other types no longer than
// maxTypeLabelLen keep theirs, and the rest count under otherEventType.
type typeLabels struct {
	maxOthers int
	log       *service.Logger // warned once maxOthers types have their own series

	mu     sync.Mutex
	others map[string]bool
}

func (l *typeLabels) label(eventType string) string {
	if eventType == "" {
		return unknownEventType
	}
	if knownEventTypeSet[eventType] {
		return eventType
	}
	if len(eventType) > maxTypeLabelLen {
		return otherEventType
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.others[eventType] {
		return eventType
	}
	if len(l.others) >= l.maxOthers {
		return otherEventType
	}
	if l.others == nil {
		l.others = map[string]bool{}
	}
	l.others[eventType] = true
	if len(l.others) == l.maxOthers {
		l.log.Warnf("%d event types outside Braze's known ones have been counted; more count under event_type %q", l.maxOthers, otherEventType)
	}
	return eventType
}
