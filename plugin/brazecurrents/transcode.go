package brazecurrents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// The transcoder turns Avro binary records straight into JSON bytes, without
// building Go values in between: that is what makes the scanner cheaper per
// event than decoding into maps and marshalling again.

// maxDepth bounds nesting so that hostile data in recursive schemas cannot
// exhaust the stack.
const maxDepth = 256

// amplifyGuard bounds how many items may be declared beyond the bytes left in
// a block (only zero-byte items such as nulls could legitimately need that),
// so a corrupt count cannot make a tiny block produce unbounded output.
const amplifyGuard = 1 << 14

var (
	errShortRecord = errors.New("record runs past the end of its block")
	errVarint      = errors.New("varint overflows 64 bits")
)

type decoder struct {
	data  []byte
	pos   int
	out   []byte
	depth int
	limit int // the most JSON bytes the block may produce

	// The record being decoded: once its bytes pass maxRecordBytes it is
	// oversize, and its strings are skipped, never copied (fits).
	recStart int
	oversize bool

	// Structured mode (structured.go) only.
	text     string // a chunk of the block's data, shared by the decoded strings (str)
	textBase int    // where text starts in data
	values   int    // values decoded so far, bounded by limit/valueBytes
}

// maxBlockOutput bounds the JSON (or, over valueBytes, the structured
// values) one block may produce, whatever its counts claim.
const maxBlockOutput = 4 * maxBlockBytes

// outputLimit bounds the JSON a block may produce: far above what real
// events need (keys and nulls expand a few bytes each), far below what
// corrupt counts of zero-byte items (nested arrays of nulls) could claim.
func outputLimit(dataLen int, count int64, keyBytes int) int {
	return int(min(64*int64(dataLen)+count*int64(keyBytes)+1<<20, maxBlockOutput))
}

// fits reports whether the record still fits maxRecordBytes with l more
// bytes. An oversize record is decoded on only to find where it ends: its
// bytes are never copied, and the caller drops it.
func (d *decoder) fits(l int) bool {
	if d.pos+l-d.recStart > maxRecordBytes {
		d.oversize = true
	}
	return !d.oversize
}

var errOutputLimit = errors.New("decoded output would exceed the limit for its block size: corrupt item counts")

func (d *decoder) long() (int64, error) {
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

// length reads a byte or item count and checks it against what is left.
func (d *decoder) length(what string) (int, error) {
	n, err := d.long()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > int64(len(d.data)-d.pos) {
		return 0, fmt.Errorf("%s length %d exceeds the %d bytes left in the block", what, n, len(d.data)-d.pos)
	}
	return int(n), nil
}

func (d *decoder) value(n *node) error {
	switch n.kind {
	case kindNull:
		d.out = append(d.out, "null"...)
	case kindBoolean:
		if d.pos >= len(d.data) {
			return errShortRecord
		}
		switch d.data[d.pos] {
		case 0:
			d.out = append(d.out, "false"...)
		case 1:
			d.out = append(d.out, "true"...)
		default:
			return fmt.Errorf("invalid boolean byte %d", d.data[d.pos])
		}
		d.pos++
	case kindInt, kindLong:
		v, err := d.long()
		if err != nil {
			return err
		}
		if n.kind == kindInt && (v < math.MinInt32 || v > math.MaxInt32) {
			return fmt.Errorf("int value %d out of 32-bit range", v)
		}
		d.out = strconv.AppendInt(d.out, v, 10)
	case kindFloat:
		if len(d.data)-d.pos < 4 {
			return errShortRecord
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(d.data[d.pos:]))
		d.pos += 4
		d.out = appendFloat(d.out, float64(f), 32)
	case kindDouble:
		if len(d.data)-d.pos < 8 {
			return errShortRecord
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.pos:]))
		d.pos += 8
		d.out = appendFloat(d.out, f, 64)
	case kindString:
		l, err := d.length("string")
		if err != nil {
			return err
		}
		if d.fits(l) {
			d.out = appendJSONString(d.out, d.data[d.pos:d.pos+l])
		}
		d.pos += l
	case kindBytes:
		l, err := d.length("bytes")
		if err != nil {
			return err
		}
		if d.fits(l) {
			d.out = appendJSONLatin1(d.out, d.data[d.pos:d.pos+l])
		}
		d.pos += l
	case kindFixed:
		if len(d.data)-d.pos < n.size {
			return errShortRecord
		}
		if d.fits(n.size) {
			d.out = appendJSONLatin1(d.out, d.data[d.pos:d.pos+n.size])
		}
		d.pos += n.size
	case kindEnum:
		i, err := d.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return fmt.Errorf("enum index %d out of range", i)
		}
		d.out = appendJSONString(d.out, n.symbols[i])
	case kindUnion:
		i, err := d.long()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return fmt.Errorf("union branch %d out of range", i)
		}
		return d.value(n.branches[i])
	case kindRecord:
		return d.record(n)
	case kindArray, kindMap:
		return d.collection(n)
	}
	return nil
}

func (d *decoder) record(n *node) error {
	if d.depth++; d.depth > maxDepth {
		return errors.New("nesting deeper than 256 levels")
	}
	d.out = append(d.out, '{')
	for i := range n.fields {
		d.out = append(d.out, n.fields[i].key...)
		if err := d.value(n.fields[i].node); err != nil {
			return err
		}
	}
	d.out = append(d.out, '}')
	d.depth--
	return nil
}

// collection decodes an array or a map: a series of counted blocks ending
// with a zero count; a negative count is followed by the block's byte size.
func (d *decoder) collection(n *node) error {
	if d.depth++; d.depth > maxDepth {
		return errors.New("nesting deeper than 256 levels")
	}
	open, closing := byte('['), byte(']')
	if n.kind == kindMap {
		open, closing = '{', '}'
	}
	d.out = append(d.out, open)
	first := true
	for {
		count, err := d.itemCount()
		if err != nil {
			return err
		}
		if count == 0 {
			break
		}
		for ; count > 0; count-- {
			if len(d.out) > d.limit {
				return errOutputLimit
			}
			if !first {
				d.out = append(d.out, ',')
			}
			first = false
			if n.kind == kindMap {
				l, err := d.length("map key")
				if err != nil {
					return err
				}
				if d.fits(l) {
					d.out = appendJSONString(d.out, d.data[d.pos:d.pos+l])
				}
				d.pos += l
				d.out = append(d.out, ':')
			}
			if err := d.value(n.items); err != nil {
				return err
			}
		}
	}
	d.out = append(d.out, closing)
	d.depth--
	return nil
}

// itemCount reads the count of a collection's next block of items, 0 at its
// end; a negative count is followed by the block's byte size, not needed.
func (d *decoder) itemCount() (int64, error) {
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

// appendFloat writes the shortest form that round-trips. JSON has no NaN or
// infinity, so those become null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// plainASCII marks the bytes that go into a JSON string as they are.
var plainASCII = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaping as encoding/json does
// (minus HTML escaping) and replacing invalid UTF-8 with U+FFFD.
func appendJSONString[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if plainASCII[b] {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// Valid JSON, but not valid JavaScript: escape like encoding/json.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// decodeRune copies at most one rune's bytes so that strings and byte slices
// share one allocation-free path.
func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s)
	return utf8.DecodeRune(buf[:n])
}

// appendJSONLatin1 writes Avro bytes and fixed values the way Avro's own JSON
// encoding does: one code point per byte.
func appendJSONLatin1(dst []byte, b []byte) []byte {
	return appendJSONString(dst, latin1String(b))
}
