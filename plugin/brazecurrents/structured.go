package brazecurrents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// The structured decoder builds the Go values a mapping reads (maps, slices,
// strings, int64, float64, bool, nil) straight from Avro binary. Handing
// Bloblang structured messages spares it parsing the JSON the transcoder
// would write, which cost more than decoding the Avro. The values equal what
// parsing the transcoder's JSON gives (fuzzed in FuzzScanner): floats carry
// the digits of their shortest form, invalid UTF-8 becomes U+FFFD, NaN and
// infinities become nil.

// valueBytes is the least memory one decoded value takes (an interface), so
// limit/valueBytes values bound a block's memory as limit bounds its JSON.
const valueBytes = 16

func (d *decoder) anyValue(n *node) (any, error) {
	if d.values++; d.values > d.limit/valueBytes {
		return nil, errOutputLimit
	}
	switch n.kind {
	case kindNull:
		return nil, nil
	case kindBoolean:
		if d.pos >= len(d.data) {
			return nil, errShortRecord
		}
		b := d.data[d.pos]
		if b > 1 {
			return nil, fmt.Errorf("invalid boolean byte %d", b)
		}
		d.pos++
		return b == 1, nil
	case kindInt, kindLong:
		v, err := d.long()
		if err != nil {
			return nil, err
		}
		if n.kind == kindInt && (v < math.MinInt32 || v > math.MaxInt32) {
			return nil, fmt.Errorf("int value %d out of 32-bit range", v)
		}
		return v, nil
	case kindFloat:
		if len(d.data)-d.pos < 4 {
			return nil, errShortRecord
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(d.data[d.pos:]))
		d.pos += 4
		return floatValue(float64(f), 32), nil
	case kindDouble:
		if len(d.data)-d.pos < 8 {
			return nil, errShortRecord
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.pos:]))
		d.pos += 8
		return floatValue(f, 64), nil
	case kindString:
		l, err := d.length("string")
		if err != nil || !d.fits(l) {
			d.pos += l
			return "", err
		}
		s := d.str(l)
		d.pos += l
		return validString(s), nil
	case kindBytes:
		l, err := d.length("bytes")
		if err != nil || !d.fits(l) {
			d.pos += l
			return "", err
		}
		s := latin1String(d.data[d.pos : d.pos+l])
		d.pos += l
		return s, nil
	case kindFixed:
		if len(d.data)-d.pos < n.size {
			return nil, errShortRecord
		}
		s := ""
		if d.fits(n.size) {
			s = latin1String(d.data[d.pos : d.pos+n.size])
		}
		d.pos += n.size
		return s, nil
	case kindEnum:
		i, err := d.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return nil, fmt.Errorf("enum index %d out of range", i)
		}
		return validString(n.symbols[i]), nil
	case kindUnion:
		i, err := d.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, fmt.Errorf("union branch %d out of range", i)
		}
		d.values-- // the branch's value is the union's
		return d.anyValue(n.branches[i])
	case kindRecord:
		return d.anyRecord(n)
	case kindArray, kindMap:
		return d.anyCollection(n)
	}
	return nil, fmt.Errorf("unknown schema node kind %d", n.kind)
}

func (d *decoder) anyRecord(n *node) (any, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, errors.New("nesting deeper than 256 levels")
	}
	obj := make(map[string]any, len(n.fields))
	for i := range n.fields {
		v, err := d.anyValue(n.fields[i].node)
		if err != nil {
			return nil, err
		}
		obj[n.fields[i].name] = v
	}
	d.depth--
	return obj, nil
}

// anyCollection decodes an array or a map, as collection does.
func (d *decoder) anyCollection(n *node) (any, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, errors.New("nesting deeper than 256 levels")
	}
	var (
		arr = []any{}
		obj map[string]any
	)
	if n.kind == kindMap {
		obj = map[string]any{}
	}
	for {
		count, err := d.itemCount()
		if err != nil {
			return nil, err
		}
		if count == 0 {
			break
		}
		for ; count > 0; count-- {
			var key string
			if obj != nil {
				l, err := d.length("map key")
				if err != nil {
					return nil, err
				}
				if d.fits(l) {
					key = validString(d.str(l))
				}
				d.pos += l
			}
			v, err := d.anyValue(n.items)
			if err != nil {
				return nil, err
			}
			switch {
			case d.oversize: // dropped with its record: do not grow it
			case obj != nil:
				obj[key] = v
			default:
				arr = append(arr, v)
			}
		}
	}
	d.depth--
	if obj != nil {
		return obj, nil
	}
	return arr, nil
}

// textChunk is how much of a block str copies at once.
const textChunk = 64 << 10

// str returns the block's next l bytes as a string. Strings share copies of
// the block made a chunk at a time, as decoding reaches them: one string
// per value would cost an allocation each, and one copy of the whole block
// would be pinned by every batch, however few bytes its events span.
func (d *decoder) str(l int) string {
	if l == 0 {
		return ""
	}
	if d.pos < d.textBase || d.pos+l > d.textBase+len(d.text) {
		d.text, d.textBase = string(d.data[d.pos:min(len(d.data), d.pos+max(l, textChunk))]), d.pos
	}
	return d.text[d.pos-d.textBase : d.pos-d.textBase+l]
}

// floatValue is f as parsing its shortest JSON form gives it: a float32
// 0.1 is 0.1, not 0.10000000149011612. JSON has no NaN or infinity.
func floatValue(f float64, bits int) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	if bits == 32 {
		f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 32), 64)
	}
	return f
}

// validString replaces each byte of invalid UTF-8 with U+FFFD, as the JSON
// path does; valid strings (nearly all) are returned as they are.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r) // range yields U+FFFD for each invalid byte
	}
	return string(out)
}

// latin1String is Avro's JSON form of bytes and fixed values: one code point
// per byte (transcode.go writes it too).
func latin1String(b []byte) string {
	runes := make([]rune, len(b))
	for i, c := range b {
		runes[i] = rune(c)
	}
	return string(runes)
}
