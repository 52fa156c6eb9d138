package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	scannerFieldBatchSize  = "batch_size"
	scannerFieldStructured = "structured"
)

// Metadata keys set on every decoded event.
const (
	MetaEventType     = "braze_event_type"
	MetaIntegrationID = "braze_integration_id"
	MetaDateHour      = "braze_date_hour"
	MetaVersion       = "braze_currents_version"
	MetaSource        = "braze_source"
	MetaRecordIndex   = "braze_record_index"
)

func scannerSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Decodes Braze Currents Avro object container files into one message per event.").
		Description(`
Reads a Currents export file (an Avro Object Container File, as Currents writes to S3, GCS and Azure Blob)
as a stream, one block at a time, so memory stays flat however many events a file holds. Every file is
decoded with its own writer schema, so schema changes need no configuration. Codecs: null, deflate,
snappy and zstandard.

Each event becomes an object of the schema's fields, structured (ready for a mapping) or as JSON text in
the schema's field order (`+"`structured: false`"+`): nullable unions are unwrapped to their value or
`+"`null`"+`, arrays stay arrays, and `+"`time`"+` is an integer of seconds whether the file stores it as an
Avro int or long. Float NaN and infinities, which JSON cannot carry, become null.

The source is acknowledged once every event from it was acknowledged. A nack of any event, a read error
or a shutdown before the end of the file nacks the whole source. An empty object is skipped with a
warning. A file that is not Avro, is truncated or has a bad sync marker yields an error that names the
source and the byte offset; the events before the damage are still delivered.

== Metadata

This scanner adds the following metadata to each message:

- `+"`braze_event_type`"+`: the event type, from the writer schema's full name (the part after
  `+"`.inner.`"+`), else from the `+"`event_type=`"+` part of the source name.
- `+"`braze_integration_id`"+`, `+"`braze_date_hour`"+` (the UTC queue hour, `+"`YYYY-MM-DD-HH`"+`) and
  `+"`braze_currents_version`"+`: from the source name, where it carries them.
- `+"`braze_source`"+`: the source name (file path or object key).
- `+"`braze_record_index`"+`: the event's index in the file, from 0.
`).
		Fields(
			service.NewIntField(scannerFieldBatchSize).
				Description("The most events emitted in one batch. Larger batches cost less per event; when a downstream output rejects some events of a batch, only those are retried.").
				Default(1000).
				Advanced(),
			structuredField(),
		)
}

// structuredField is shared with the input, which decodes with this scanner.
func structuredField() *service.ConfigField {
	return service.NewBoolField(scannerFieldStructured).
		Description("Emit each event as a structured value, ready for a mapping, rather than as JSON text. Both hold the same values. " +
			"Structured events spare the next processor parsing JSON, which costs more than decoding the Avro; written out, they become JSON with the keys sorted. " +
			"Set it to false to emit JSON text in the schema's field order, the cheaper form when events are written out unchanged.").
		Default(true).
		Advanced()
}

func init() {
	service.MustRegisterBatchScannerCreator("braze_currents", scannerSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchScannerCreator, error) {
			return scannerFromParsed(conf, mgr)
		})
}

func scannerFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*scannerCreator, error) {
	batchSize, err := conf.FieldInt(scannerFieldBatchSize)
	if err != nil {
		return nil, err
	}
	if batchSize < 1 {
		return nil, fmt.Errorf("%s must be at least 1, got %d", scannerFieldBatchSize, batchSize)
	}
	structured, err := conf.FieldBool(scannerFieldStructured)
	if err != nil {
		return nil, err
	}
	return &scannerCreator{batchSize: batchSize, structured: structured, log: mgr.Logger(), programs: newProgramCache()}, nil
}

type scannerCreator struct {
	batchSize  int
	structured bool // emit structured values, not JSON text
	log        *service.Logger
	programs   *programCache
}

// Create never reads: a bad header must surface from NextBatch, because some
// inputs (the core file input) retry a source forever when Create fails.
func (c *scannerCreator) Create(rdr io.ReadCloser, aFn service.AckFunc, details *service.ScannerSourceDetails) (service.BatchScanner, error) {
	name := ""
	if details != nil {
		name = details.Name()
	}
	return service.AutoAggregateBatchScannerAcks(c.newEventScanner(rdr, name, 0, nil), aFn), nil
}

// newEventScanner decodes rdr, dropping the first skip events (already
// delivered by an earlier, interrupted read) and adding extra metadata to
// every event.
func (c *scannerCreator) newEventScanner(rdr io.ReadCloser, source string, skip int64, extra map[string]any) *eventScanner {
	return &eventScanner{rdr: rdr, source: source, ocf: newOCFReader(rdr), c: c, skip: skip, extra: extra}
}

func (c *scannerCreator) Close(context.Context) error { return nil }

// eventScanner decodes one source. Events of the current block wait in
// pending until they are handed out, batchSize at a time.
type eventScanner struct {
	rdr    io.ReadCloser
	source string
	ocf    *ocfReader
	c      *scannerCreator

	started  bool
	prog     *program
	template *service.Message // carries the per-source metadata
	pending  service.MessageBatch
	next     int64 // index in the file of the next event decoded
	skip     int64 // events before this index are not emitted
	extra    map[string]any
	failure  error // returned once pending is drained
}

func (s *eventScanner) NextBatch(ctx context.Context) (service.MessageBatch, error) {
	if !s.started {
		s.started = true
		if err := s.start(); err != nil {
			s.failure = err
		}
	}
	for len(s.pending) == 0 {
		if s.failure != nil {
			return nil, s.failure
		}
		if err := s.readBlock(); err != nil {
			return nil, err
		}
	}
	n := min(len(s.pending), s.c.batchSize)
	batch := s.pending[:n:n]
	s.pending = s.pending[n:]
	return batch, nil
}

func (s *eventScanner) start() error {
	err := s.ocf.readHeader()
	if errors.Is(err, io.EOF) {
		s.c.log.Warnf("Skipping empty object %q: it holds no Avro data", s.source)
		return io.EOF
	}
	if err != nil {
		return s.wrap(err)
	}
	if s.prog, err = s.c.programs.get(s.ocf.header.schema); err != nil {
		return s.wrap(&positionError{offset: 0, err: err, corrupt: true})
	}
	key := ParseObjectKey(s.source)
	eventType := s.prog.eventType()
	if eventType == "" {
		eventType = key.EventType
	}
	s.template = service.NewMessage(nil)
	for k, v := range map[string]string{
		MetaEventType:     eventType,
		MetaIntegrationID: key.IntegrationID,
		MetaDateHour:      key.DateHour,
		MetaVersion:       key.Version,
		MetaSource:        s.source,
	} {
		s.template.MetaSet(k, v)
	}
	for k, v := range s.extra {
		s.template.MetaSetMut(k, v)
	}
	return nil
}

// readBlock decodes the next block into pending. Events decoded before any
// damage are kept; the damage is remembered in failure.
func (s *eventScanner) readBlock() error {
	block, err := s.ocf.nextBlock()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	if err != nil {
		s.failure = s.wrap(err)
		if block.data == nil {
			return s.failure
		}
	}
	events, decodeErr := s.decode(block)
	s.pending = events
	if decodeErr != nil {
		// Damage inside a block comes before any found after it.
		s.failure = s.wrap(decodeErr)
	}
	return nil
}

func (s *eventScanner) decode(b ocfBlock) (service.MessageBatch, error) {
	if b.count > int64(len(b.data))+amplifyGuard {
		return nil, &positionError{offset: b.offset, err: fmt.Errorf("block declares %d records in only %d bytes", b.count, len(b.data)), corrupt: true}
	}
	d := decoder{data: b.data, limit: outputLimit(len(b.data), b.count, s.prog.keyBytes)}
	var (
		values []any // structured mode: one per record
		ends   []int // JSON mode: where each record's JSON ends in d.out
		err    error
	)
	if s.c.structured {
		d.text = string(b.data)
		values = make([]any, 0, b.count)
	} else {
		d.out = make([]byte, 0, len(b.data)+int(b.count)*s.prog.keyBytes)
		ends = make([]int, 0, b.count)
	}
	for i := int64(0); i < b.count; i++ {
		if s.c.structured {
			var v any
			if v, err = d.anyValue(s.prog.root); err == nil {
				values = append(values, v)
			}
		} else if len(d.out) > d.limit {
			err = errOutputLimit
		} else if err = d.value(s.prog.root); err == nil {
			ends = append(ends, len(d.out))
		}
		if err != nil {
			err = fmt.Errorf("record %d: %w", s.next+i, err)
			break
		}
	}
	if err == nil && d.pos != len(d.data) {
		err = fmt.Errorf("%d bytes left over after the block's %d records", len(d.data)-d.pos, b.count)
	}
	if err != nil {
		err = &positionError{offset: b.offset, err: fmt.Errorf("block: %w", err), corrupt: true}
	}
	decoded := max(len(values), len(ends))
	events := make(service.MessageBatch, 0, decoded)
	for i := range decoded {
		index := s.next
		s.next++
		if index < s.skip {
			continue
		}
		msg := s.template.Copy()
		if s.c.structured {
			msg.SetStructuredMut(values[i])
		} else {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			msg.SetBytes(d.out[start:ends[i]:ends[i]])
		}
		msg.MetaSetMut(MetaRecordIndex, index)
		events = append(events, msg)
	}
	return events, err
}

func (s *eventScanner) wrap(err error) error {
	return fmt.Errorf("braze_currents: decoding %q: %w", s.source, err)
}

func (s *eventScanner) Close(context.Context) error {
	s.ocf.close()
	return s.rdr.Close()
}
