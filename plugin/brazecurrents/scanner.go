package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
)

const (
	scannerFieldBatchSize  = "batch_size"
	scannerFieldStructured = "structured"
)

// ErrCorrupt matches (with errors.Is) every error about bytes that are not a
// valid Currents Avro file, as opposed to errors reading them: reading again
// cannot fix a corrupt object, while a read error may pass.
var ErrCorrupt = avro.ErrCorrupt

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
snappy, zstandard and bzip2 (not xz, whose blocks may claim gigabytes of memory).

Each event becomes an object of the schema's fields, structured (ready for a mapping) or as JSON text in
the schema's field order (`+"`structured: false`"+`): nullable unions are unwrapped to their value or
`+"`null`"+`, arrays stay arrays, and `+"`time`"+` is an integer of seconds whether the file stores it as an
Avro int or long. Float NaN and infinities, which JSON cannot carry, become null.

The source is acknowledged once every event from it was acknowledged. A nack of any event, a read error
or a shutdown before the end of the file nacks the whole source. An empty object is skipped with a
warning. A file that is not Avro, is truncated or has a bad sync marker yields an error that names the
source and the byte offset; the events before the damage are still delivered. So does a valid Avro file
whose schema is not a Currents event schema (a record named `+"`….inner.<event type>`"+` with a string `+"`id`"+`
and an int or long `+"`time`"+`): reading it again cannot help.

Memory is bounded whatever a file holds: a block may take at most 4 MiB, compressed or decompressed
(decompression stops there), and the header 256 KiB; a file over either is reported as damaged at that
block. A record over 256 KiB of Avro, eight times what one Segment call may carry, is not decoded: it
goes on in its place as a message flagged with an error naming the source, its index, its size and the
limit (logged too), its metadata as every event's, its content not the record but where it is:
`+"`{\"oversize_record\": {\"source\", \"record_index\", \"event_type\", \"avro_bytes\", \"limit_bytes\"}}`"+`.
A pipeline's error path (the shipped configs' dead letters) takes it; the rest of the file is read. A batch holds at most
512 KiB of Avro, so blocks of large records go downstream a few at a time.

== Metadata

This scanner adds the following metadata to each message:

- `+"`braze_event_type`"+`: the event type, from the writer schema's full name (the part after
  `+"`.inner.`"+`).
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
	return &scannerCreator{batchSize: batchSize, structured: structured, log: mgr.Logger(), programs: avro.NewSchemaCache()}, nil
}

type scannerCreator struct {
	batchSize  int
	structured bool // emit structured values, not JSON text
	log        *service.Logger
	programs   *avro.SchemaCache
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
	return &eventScanner{rdr: rdr, source: source, ocf: avro.NewReader(rdr), c: c, skip: skip, extra: extra}
}

func (c *scannerCreator) Close(context.Context) error { return nil }

// eventScanner decodes one source. A block's records are decoded as batches
// are asked for, so a source holds at most one block's bytes and one batch
// of events (scanner_block.go).
type eventScanner struct {
	rdr    io.ReadCloser
	source string
	ocf    *avro.Reader
	c      *scannerCreator

	started  bool
	prog     *avro.Schema
	template *service.Message // carries the per-source metadata
	block    *blockCursor     // the block being decoded; nil between blocks
	next     int64            // index in the file of the next event decoded
	skip     int64            // events before this index are not emitted
	extra    map[string]any
	failure  error                  // returned once the events before it are out
	rejected *service.MetricCounter // records sent on flagged, by reason; nil outside the input
}

// rejectTooLarge is the reason label of records over avro.MaxRecordBytes.
const rejectTooLarge = "too_large"

func (s *eventScanner) NextBatch(ctx context.Context) (service.MessageBatch, error) {
	if !s.started {
		s.started = true
		if err := s.start(); err != nil {
			s.failure = err
		}
	}
	for {
		if s.block == nil {
			if s.failure != nil {
				return nil, s.failure
			}
			if err := s.openBlock(); err != nil {
				return nil, err
			}
			continue
		}
		if batch := s.decodeBatch(); len(batch) > 0 {
			return batch, nil
		}
	}
}

func (s *eventScanner) start() error {
	schema, err := s.ocf.ReadHeader()
	if errors.Is(err, io.EOF) {
		s.c.log.Warnf("Skipping empty object %q: it holds no Avro data", s.source)
		return io.EOF
	}
	if err != nil {
		return s.wrap(err)
	}
	if s.prog, err = s.c.programs.Get(schema); err != nil {
		return s.wrap(avro.CorruptAt(0, err))
	}
	key := ParseObjectKey(s.source)
	s.template = service.NewMessage(nil)
	for k, v := range map[string]string{
		MetaEventType:     s.prog.EventType(),
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

func (s *eventScanner) wrap(err error) error {
	return fmt.Errorf("braze_currents: decoding %q: %w", s.source, err)
}

func (s *eventScanner) Close(context.Context) error {
	s.ocf.Close()
	return s.rdr.Close()
}
