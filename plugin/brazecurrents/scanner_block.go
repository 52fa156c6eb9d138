package brazecurrents

import (
	"errors"
	"fmt"
	"io"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// maxBatchBytes bounds the Avro bytes of the events in one batch.
const maxBatchBytes = 512 << 10

// blockCursor is a block being decoded a batch at a time.
type blockCursor struct {
	block   ocfBlock
	d       decoder
	done    int64 // records decoded so far
	written int   // JSON bytes of the batches already handed out (JSON mode)
	after   error // an error found reading past the block, due once its events are out
}

// openBlock reads the next block. Damage found after the block's data (a
// bad sync marker) is reported once the block's events are out.
func (s *eventScanner) openBlock() error {
	b, err := s.ocf.nextBlock()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	if err != nil && b.data == nil {
		s.failure = s.wrap(err)
		return s.failure
	}
	if b.count > int64(len(b.data))+amplifyGuard {
		s.failure = s.wrap(&positionError{offset: b.offset, err: fmt.Errorf("block declares %d records in only %d bytes", b.count, len(b.data)), corrupt: true})
		return nil
	}
	c := &blockCursor{block: b, d: decoder{data: b.data, limit: outputLimit(len(b.data), b.count, s.prog.keyBytes)}}
	if err != nil {
		c.after = s.wrap(err)
	}
	s.block = c
	return nil
}

// decodeBatch decodes the current block's next batch of events. Events
// decoded before any damage are returned; the damage is left in failure.
// Oversize records are dropped and reported (reject), and decoding goes on.
func (s *eventScanner) decodeBatch() service.MessageBatch {
	c := s.block
	size := int(min(c.block.count-c.done, int64(s.c.batchSize)))
	var (
		values  []any // structured mode
		ends    []int // JSON mode: where each event's JSON ends in c.d.out
		indexes = make([]int64, 0, size)
		err     error
	)
	if s.c.structured {
		values = make([]any, 0, size)
	} else {
		perRecord := len(c.block.data)/int(max(c.block.count, 1)) + s.prog.keyBytes
		c.d.out = make([]byte, 0, size*perRecord)
		ends = make([]int, 0, size)
	}
	// A batch also ends after maxBatchBytes of Avro: a block of records near
	// the limit must not go downstream, where batches pile up, all at once.
	for from := c.d.pos; c.done < c.block.count && len(indexes) < s.c.batchSize && c.d.pos-from < maxBatchBytes; {
		var v any
		start, out := c.d.pos, len(c.d.out)
		c.d.recStart, c.d.oversize = start, false
		switch {
		case s.c.structured:
			v, err = c.d.anyValue(s.prog.root)
		case c.written+len(c.d.out) > c.d.limit:
			err = errOutputLimit
		default:
			err = c.d.value(s.prog.root)
		}
		if err != nil {
			s.fail(&positionError{offset: c.block.offset, err: fmt.Errorf("block: record %d: %w", s.next, err), corrupt: true})
			break
		}
		c.done++
		index := s.next
		if s.next++; s.next <= s.skip || !c.d.fits(0) {
			if index >= s.skip {
				s.reject(index, c.d.pos-start)
			}
			if !s.c.structured {
				c.written += len(c.d.out) - out
				c.d.out = c.d.out[:out] // already delivered by an earlier read, or dropped
			}
			continue
		}
		indexes = append(indexes, index)
		if s.c.structured {
			values = append(values, v)
		} else {
			ends = append(ends, len(c.d.out))
		}
	}
	if s.block != nil && c.done == c.block.count {
		if left := len(c.d.data) - c.d.pos; left != 0 {
			s.fail(&positionError{offset: c.block.offset, err: fmt.Errorf("block: %d bytes left over after the block's %d records", left, c.block.count), corrupt: true})
		} else {
			s.failure, s.block = c.after, nil
		}
	}
	c.written += len(c.d.out)
	return s.messages(indexes, values, ends, c.d.out)
}

// reject reports a record over maxRecordBytes. Its framing is intact, so
// the rest of the source is still read; an input counts it.
func (s *eventScanner) reject(index int64, size int) {
	s.c.log.Errorf("braze_currents: skipping record %d of %q: %d bytes of Avro, over the %d-byte record limit (a Segment call carries at most 32 KB); the rest of the object is read",
		index, s.source, size, maxRecordBytes)
	if s.rejected != nil {
		s.rejected.Incr(1, rejectTooLarge)
	}
}

// fail ends the source: the damage comes before any found after the block.
func (s *eventScanner) fail(err error) {
	s.failure, s.block = s.wrap(err), nil
}

// messages wraps decoded events, the ith being record indexes[i] of the file.
func (s *eventScanner) messages(indexes []int64, values []any, ends []int, out []byte) service.MessageBatch {
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
		msg.MetaSetMut(MetaRecordIndex, index)
		events = append(events, msg)
	}
	return events
}
