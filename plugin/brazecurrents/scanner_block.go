package brazecurrents

import (
	"errors"
	"fmt"
	"io"

	"github.com/redpanda-data/benthos/v4/public/service"
)

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
	if s.c.structured {
		c.d.text = string(b.data) // the decoded strings share this copy
	}
	s.block = c
	return nil
}

// decodeBatch decodes the current block's next batch of events. Events
// decoded before any damage are returned; the damage is left in failure.
func (s *eventScanner) decodeBatch() service.MessageBatch {
	c := s.block
	size := int(min(c.block.count-c.done, int64(s.c.batchSize)))
	var (
		values []any // structured mode
		ends   []int // JSON mode: where each event's JSON ends in c.d.out
		first  = s.next
		err    error
	)
	if s.c.structured {
		values = make([]any, 0, size)
	} else {
		perRecord := len(c.block.data)/int(max(c.block.count, 1)) + s.prog.keyBytes
		c.d.out = make([]byte, 0, size*perRecord)
		ends = make([]int, 0, size)
	}
	for emitted := 0; c.done < c.block.count && emitted < s.c.batchSize; c.done++ {
		var v any
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
		if s.next++; s.next <= s.skip {
			if !s.c.structured {
				c.written += len(c.d.out)
				c.d.out = c.d.out[:0] // already delivered by an earlier read
			}
			continue
		}
		emitted++
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
	return s.messages(first, values, ends, c.d.out)
}

// fail ends the source: the damage comes before any found after the block.
func (s *eventScanner) fail(err error) {
	s.failure, s.block = s.wrap(err), nil
}

// messages wraps decoded events, numbered from after the skipped ones.
func (s *eventScanner) messages(first int64, values []any, ends []int, out []byte) service.MessageBatch {
	n := max(len(values), len(ends))
	events := make(service.MessageBatch, 0, n)
	index := max(first, s.skip)
	start := 0
	for i := range n {
		msg := s.template.Copy()
		if values != nil {
			msg.SetStructuredMut(values[i])
		} else {
			msg.SetBytes(out[start:ends[i]:ends[i]])
			start = ends[i]
		}
		msg.MetaSetMut(MetaRecordIndex, index)
		index++
		events = append(events, msg)
	}
	return events
}
