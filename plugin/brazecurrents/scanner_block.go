package brazecurrents

import (
	"errors"
	"fmt"
	"io"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
)

// maxBatchBytes bounds the Avro bytes of the events in one batch.
const maxBatchBytes = 512 << 10

// blockCursor is a block being decoded a batch at a time.
type blockCursor struct {
	block avro.Block
	d     avro.Decoder
	done  int64 // records decoded so far
	after error // an error found reading past the block, due once its events are out
}

// openBlock reads the next block. Damage found after the block's data (a
// bad sync marker) is reported once the block's events are out.
func (s *eventScanner) openBlock() error {
	b, err := s.ocf.NextBlock()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	if err != nil && b.Data == nil {
		s.failure = s.wrap(err)
		return s.failure
	}
	d, derr := avro.NewDecoder(s.prog, b)
	if derr != nil {
		s.failure = s.wrap(derr)
		return nil
	}
	c := &blockCursor{block: b, d: d}
	if err != nil {
		c.after = s.wrap(err)
	}
	s.block = c
	return nil
}

// decodeBatch decodes the current block's next batch of events. Events
// decoded before any damage are returned; the damage is left in failure.
// Oversize records go on in their place as flagged messages (reject), and
// decoding goes on.
func (s *eventScanner) decodeBatch() service.MessageBatch {
	c := s.block
	size := int(min(c.block.Count-c.done, int64(s.c.batchSize)))
	var (
		values  []any  // structured mode
		out     []byte // JSON mode: the batch's events
		ends    []int  // JSON mode: where each event's JSON ends in out
		indexes = make([]int64, 0, size)
		over    map[int]int // oversize records: position in the batch -> Avro bytes
		err     error
	)
	if s.c.structured {
		values = make([]any, 0, size)
	} else {
		out = make([]byte, 0, c.d.JSONSize(size))
		ends = make([]int, 0, size)
	}
	// A batch also ends after maxBatchBytes of Avro, or once its events
	// decode to half of avro.MaxBatchOutput: a block of records near the
	// limit, or of sparse ones, must not go downstream, where batches pile
	// up, all at once.
	c.d.StartBatch()
	for from := c.d.Pos(); c.done < c.block.Count && len(indexes) < s.c.batchSize && c.d.Pos()-from < maxBatchBytes && !c.d.BatchFull(); {
		var v any
		start, end := c.d.Pos(), len(out)
		if s.c.structured {
			v, err = c.d.Value()
		} else {
			out, err = c.d.AppendJSON(out)
		}
		if err != nil {
			s.fail(avro.CorruptAt(c.block.Offset, fmt.Errorf("block: record %d: %w", s.next, err)))
			break
		}
		c.done++
		index := s.next
		if s.next++; s.next <= s.skip {
			out = out[:end] // already delivered by an earlier read
			continue
		}
		if c.d.Oversize() {
			if over == nil {
				over = map[int]int{}
			}
			over[len(indexes)] = c.d.Pos() - start
			out, v = out[:end], nil // the record's partial decoding
		}
		indexes = append(indexes, index)
		if s.c.structured {
			values = append(values, v)
		} else {
			ends = append(ends, len(out))
		}
	}
	if s.block != nil && c.done == c.block.Count {
		if left := len(c.block.Data) - c.d.Pos(); left != 0 {
			s.fail(avro.CorruptAt(c.block.Offset, fmt.Errorf("block: %d bytes left over after the block's %d records", left, c.block.Count)))
		} else {
			s.failure, s.block = c.after, nil
		}
	}
	return s.messages(indexes, values, ends, out, over)
}

// reject reports a record over avro.MaxRecordBytes and returns the error
// its message carries. Its framing is intact, so the rest of the source is
// still read; an input counts it.
func (s *eventScanner) reject(index int64, size int) error {
	err := fmt.Errorf("braze_currents: record %d of %q: %d bytes of Avro, over the %d-byte record limit (a Segment call carries at most 32 KB)",
		index, s.source, size, avro.MaxRecordBytes)
	s.c.log.Errorf("%v: sent on as an error, without its content; the rest of the object is read", err)
	if s.rejected != nil {
		s.rejected.Incr(1, rejectTooLarge)
	}
	return err
}

// fail ends the source: the damage comes before any found after the block.
func (s *eventScanner) fail(err error) {
	s.failure, s.block = s.wrap(err), nil
}

// messages wraps decoded events, the ith being record indexes[i] of the file.
// An oversize record (in over, with its size) goes on flagged with its error,
// its content where it is rather than the record, so that the pipeline hands it
// to the error path (the dead letters) with the events' metadata.
func (s *eventScanner) messages(indexes []int64, values []any, ends []int, out []byte, over map[int]int) service.MessageBatch {
	events := make(service.MessageBatch, 0, len(indexes))
	start := 0
	for i, index := range indexes {
		msg := s.template.Copy()
		if values != nil {
			msg.SetStructuredMut(values[i])
		} else {
			msg.SetBytes(out[start:ends[i]:ends[i]])
			start = ends[i]
		}
		if size, oversize := over[i]; oversize {
			msg.SetStructuredMut(map[string]any{"oversize_record": map[string]any{
				"source": s.source, "record_index": index, "event_type": s.prog.EventType(),
				"avro_bytes": size, "limit_bytes": avro.MaxRecordBytes,
			}})
			msg.SetError(s.reject(index, size))
		}
		msg.MetaSetMut(MetaRecordIndex, index)
		events = append(events, msg)
	}
	return events
}
