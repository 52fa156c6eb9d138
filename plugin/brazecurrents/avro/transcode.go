package avro

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// The JSON emitter turns Avro binary records straight into JSON bytes,
// without building Go values in between: that is what makes the scanner
// cheaper per event than decoding into maps and marshalling again.

// value appends n's value to d.out as JSON. The reads it shares with the
// structured emitter are in decoder.go.
func (d *Decoder) value(n *node) error {
	switch n.kind {
	case kindRecord:
		return d.record(n)
	case kindArray, kindMap:
		return d.collection(n)
	case kindUnion:
		b, err := d.branch(n)
		if err != nil {
			return err
		}
		return d.value(b)
	case kindNull:
		d.out = append(d.out, "null"...)
	case kindBoolean:
		b, err := d.boolean()
		if err != nil {
			return err
		}
		d.out = strconv.AppendBool(d.out, b)
	case kindInt, kindLong:
		v, err := d.integer(n.kind)
		if err != nil {
			return err
		}
		d.out = strconv.AppendInt(d.out, v, 10)
	case kindFloat, kindDouble:
		f, err := d.float(n.kind)
		if err != nil {
			return err
		}
		d.out = appendFloat(d.out, f, n.kind.floatBits())
	case kindEnum:
		s, err := d.enum(n)
		if err != nil {
			return err
		}
		d.out = appendJSONString(d.out, s)
	case kindString:
		b, err := d.counted("string")
		if err != nil || d.oversize {
			return err
		}
		d.out = appendJSONString(d.out, b)
	default: // bytes, fixed
		b, err := d.raw(n)
		if err != nil || d.oversize {
			return err
		}
		d.out = appendJSONLatin1(d.out, b)
	}
	return nil
}

func (d *Decoder) record(n *node) error {
	if err := d.enter(); err != nil {
		return err
	}
	d.out = append(d.out, '{')
	for i := range n.fields {
		d.out = append(d.out, n.fields[i].key...)
		if err := d.value(n.fields[i].node); err != nil {
			return err
		}
	}
	d.out = append(d.out, '}')
	d.leave()
	return nil
}

// collection decodes an array or a map: a series of counted blocks ending
// with a zero count; a negative count is followed by the block's byte size.
func (d *Decoder) collection(n *node) error {
	if err := d.enter(); err != nil {
		return err
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
			if err := d.within(d.written + len(d.out) - d.outStart); err != nil {
				return err
			}
			if !first {
				d.out = append(d.out, ',')
			}
			first = false
			if n.kind == kindMap {
				if err := d.mapKey(); err != nil {
					return err
				}
			}
			if err := d.value(n.items); err != nil {
				return err
			}
		}
	}
	d.out = append(d.out, closing)
	d.leave()
	return nil
}

func (d *Decoder) mapKey() error {
	b, err := d.counted("map key")
	if err != nil {
		return err
	}
	if !d.oversize {
		d.out = appendJSONString(d.out, b)
	}
	d.out = append(d.out, ':')
	return nil
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
