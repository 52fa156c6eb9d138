package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The decoder reads a block's records with one set of bounds-checked reads
// (this file) and two emitters: JSON text (transcode.go) and Go values
// (structured.go).

// maxDepth bounds nesting so that hostile data in recursive schemas cannot
// exhaust the stack.
const maxDepth = 256

// amplifyGuard bounds how many items may be declared beyond the bytes left in
// a block (only zero-byte items such as nulls could legitimately need that),
// so a corrupt count cannot make a tiny block produce unbounded output.
const amplifyGuard = 1 << 14

// MaxBatchOutput bounds the JSON (or, over valueBytes, the structured
// values) decoded since StartBatch, whatever the counts claim: that is what
// a reader holds at once. Batches end at half of it (BatchFull), so only
// corrupt counts reach it; a block's output as a whole is bounded relative
// to its size (outputLimit), as a block of 4 MiB of real events may decode
// to several times the limit.
const MaxBatchOutput = 4 * MaxBlockBytes

var (
	errShortRecord = errors.New("record runs past the end of its block")
	errVarint      = errors.New("varint overflows 64 bits")
	errDepth       = fmt.Errorf("nesting deeper than %d levels", maxDepth)
	errOutputLimit = errors.New("decoded output would exceed the limit for its block size or its batch: corrupt item counts")
)

// Decoder decodes the records of one block, one at a time, as JSON text or
// as Go values. An error leaves it unusable.
type Decoder struct {
	schema *Schema
	data   []byte
	count  int64 // records in the block
	pos    int
	depth  int
	limit  int // the most JSON bytes the block may produce

	// Output before the batch: JSON bytes or valueBytes per value.
	batchStart int

	// The record being decoded: once its bytes pass MaxRecordBytes it is
	// oversize, and its strings are skipped, never copied (fits).
	recStart int
	oversize bool

	// JSON text only.
	out      []byte // where value appends
	outStart int    // len(out) when the record began
	written  int    // JSON bytes of the block's records so far

	// Go values only.
	text     string // a chunk of the block's data, shared by the decoded strings (str)
	textBase int    // where text starts in data
	values   int    // values decoded so far, bounded by limit/valueBytes
}

// NewDecoder decodes the records of b, written with s. A block that claims
// more records than its bytes could hold is refused as corrupt. The Decoder
// is returned by value so that it can live inside its caller's state.
func NewDecoder(s *Schema, b Block) (Decoder, error) {
	if b.Count > int64(len(b.Data))+amplifyGuard {
		return Decoder{}, CorruptAt(b.Offset, fmt.Errorf("block declares %d records in only %d bytes", b.Count, len(b.Data)))
	}
	return Decoder{schema: s, data: b.Data, count: b.Count, limit: outputLimit(len(b.Data), b.Count, s.keyBytes)}, nil
}

// outputLimit bounds the JSON a block may produce: far above what real
// events need (keys and nulls expand a few bytes each), far below what
// corrupt counts of zero-byte items (nested arrays of nulls) could claim.
func outputLimit(dataLen int, count int64, keyBytes int) int {
	return int(64*int64(dataLen) + count*int64(keyBytes) + 1<<20)
}

// AppendJSON decodes the next record and appends it to dst as JSON text,
// with the schema's fields in order. dst is returned even on error.
func (d *Decoder) AppendJSON(dst []byte) ([]byte, error) {
	d.startRecord()
	if err := d.within(d.written); err != nil {
		return dst, err
	}
	d.out, d.outStart = dst, len(dst)
	err := d.value(d.schema.root)
	d.written += len(d.out) - len(dst)
	dst, d.out = d.out, nil
	return dst, err
}

// Value decodes the next record as the Go values a mapping reads.
func (d *Decoder) Value() (any, error) {
	d.startRecord()
	return d.anyValue(d.schema.root)
}

// Oversize reports whether the record just decoded passed MaxRecordBytes:
// it was decoded only to find where it ends, and must be dropped.
func (d *Decoder) Oversize() bool { return !d.fits(0) }

// Pos is how many bytes of the block were read.
func (d *Decoder) Pos() int { return d.pos }

// JSONSize estimates the JSON text of n records, to size output buffers:
// never more than a batch holds.
func (d *Decoder) JSONSize(n int) int {
	return min(n*(len(d.data)/int(max(d.count, 1))+d.schema.keyBytes), MaxBatchOutput/2)
}

// StartBatch starts counting output towards MaxBatchOutput anew: the
// caller no longer holds what was decoded before.
func (d *Decoder) StartBatch() {
	d.batchStart = d.output()
}

// BatchFull reports whether the output since StartBatch reached half of
// MaxBatchOutput: the batch should end, so that only corrupt counts can
// reach the limit within a record.
func (d *Decoder) BatchFull() bool {
	return d.output()-d.batchStart >= MaxBatchOutput/2
}

// output is the output of the block's records so far, in the one form the
// decoder is used for.
func (d *Decoder) output() int {
	return d.written + d.values*valueBytes
}

func (d *Decoder) startRecord() {
	d.recStart, d.oversize = d.pos, false
}

// fits reports whether the record still fits MaxRecordBytes with l more
// bytes. An oversize record is decoded on only to find where it ends: its
// bytes are never copied, and the caller drops it.
func (d *Decoder) fits(l int) bool {
	if d.pos+l-d.recStart > MaxRecordBytes {
		d.oversize = true
	}
	return !d.oversize
}

// within fails once used bytes of output of the block pass its limit, or
// those of the batch pass MaxBatchOutput.
func (d *Decoder) within(used int) error {
	if used > d.limit || used-d.batchStart > MaxBatchOutput {
		return errOutputLimit
	}
	return nil
}

// enter and leave bracket a record or collection.
func (d *Decoder) enter() error {
	if d.depth++; d.depth > maxDepth {
		return errDepth
	}
	return nil
}

func (d *Decoder) leave() { d.depth-- }

func (d *Decoder) long() (int64, error) {
	if d.pos < len(d.data) && d.data[d.pos] < 0x80 {
		b := d.data[d.pos]
		d.pos++
		return int64(b>>1) ^ -int64(b&1), nil
	}
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.pos >= len(d.data) {
			return 0, errShortRecord
		}
		b := d.data[d.pos]
		d.pos++
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, errVarint
}

// integer reads an int or a long.
func (d *Decoder) integer(k kind) (int64, error) {
	v, err := d.long()
	if err == nil && k == kindInt && (v < math.MinInt32 || v > math.MaxInt32) {
		return 0, fmt.Errorf("int value %d out of 32-bit range", v)
	}
	return v, err
}

func (d *Decoder) boolean() (bool, error) {
	if d.pos >= len(d.data) {
		return false, errShortRecord
	}
	b := d.data[d.pos]
	if b > 1 {
		return false, fmt.Errorf("invalid boolean byte %d", b)
	}
	d.pos++
	return b == 1, nil
}

// float reads a float or a double.
func (d *Decoder) float(k kind) (float64, error) {
	size := k.floatBits() / 8
	if len(d.data)-d.pos < size {
		return 0, errShortRecord
	}
	b := d.data[d.pos:]
	d.pos += size
	if k == kindFloat {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

func (k kind) floatBits() int {
	if k == kindFloat {
		return 32
	}
	return 64
}

// raw reads a bytes or fixed value.
func (d *Decoder) raw(n *node) ([]byte, error) {
	if n.kind == kindBytes {
		return d.counted("bytes")
	}
	if len(d.data)-d.pos < n.size {
		return nil, errShortRecord
	}
	return d.take(n.size), nil
}

// counted reads a length and that many bytes; what names them in errors.
func (d *Decoder) counted(what string) ([]byte, error) {
	n, err := d.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(d.data)-d.pos) {
		return nil, fmt.Errorf("%s length %d exceeds the %d bytes left in the block", what, n, len(d.data)-d.pos)
	}
	return d.take(int(n)), nil
}

// take skips the next l bytes, known to be there, and returns them; nil
// once the record is oversize, whose bytes must not be copied.
func (d *Decoder) take(l int) []byte {
	keep := d.fits(l)
	d.pos += l
	if !keep {
		return nil
	}
	return d.data[d.pos-l : d.pos]
}

func (d *Decoder) enum(n *node) (string, error) {
	i, err := d.long()
	if err != nil {
		return "", err
	}
	if i < 0 || i >= int64(len(n.symbols)) {
		return "", fmt.Errorf("enum index %d out of range", i)
	}
	return n.symbols[i], nil
}

// branch reads which branch of a union follows.
func (d *Decoder) branch(n *node) (*node, error) {
	i, err := d.long()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= int64(len(n.branches)) {
		return nil, fmt.Errorf("union branch %d out of range", i)
	}
	return n.branches[i], nil
}

// itemCount reads the count of a collection's next block of items, 0 at its
// end; a negative count is followed by the block's byte size, not needed.
func (d *Decoder) itemCount() (int64, error) {
	count, err := d.long()
	if err != nil || count == 0 {
		return 0, err
	}
	if count < 0 {
		count = -count
		if _, err := d.long(); err != nil {
			return 0, err
		}
	}
	if count < 0 || count > int64(len(d.data)-d.pos)+amplifyGuard {
		return 0, fmt.Errorf("collection of %d items cannot fit in the %d bytes left", count, len(d.data)-d.pos)
	}
	return count, nil
}
