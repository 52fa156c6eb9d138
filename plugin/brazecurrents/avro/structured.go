package avro

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// The structured emitter builds the Go values a mapping reads (maps, slices,
// strings, int64, float64, bool, nil) straight from Avro binary. Handing
// Bloblang structured messages spares it parsing the JSON the transcoder
// would write, which cost more than decoding the Avro. The values equal what
// parsing the transcoder's JSON gives (the scanner's FuzzScanner checks it):
// floats carry the digits of their shortest form, invalid UTF-8 becomes
// U+FFFD, NaN and infinities become nil.

// valueBytes is the least memory one decoded value takes (an interface), so
// limit/valueBytes values bound a block's memory as limit bounds its JSON.
const valueBytes = 16

// anyValue decodes n's value, as value does its JSON.
func (d *Decoder) anyValue(n *node) (any, error) {
	d.values++
	if err := d.within(d.values * valueBytes); err != nil {
		return nil, err
	}
	switch n.kind {
	case kindRecord:
		return d.anyRecord(n)
	case kindArray, kindMap:
		return d.anyCollection(n)
	case kindUnion:
		b, err := d.branch(n)
		if err != nil {
			return nil, err
		}
		d.values-- // the branch's value is the union's
		return d.anyValue(b)
	case kindNull:
		return nil, nil
	case kindBoolean:
		return d.boolean()
	case kindInt, kindLong:
		return d.integer(n.kind)
	case kindFloat, kindDouble:
		f, err := d.float(n.kind)
		if err != nil {
			return nil, err
		}
		return floatValue(f, n.kind.floatBits()), nil
	case kindEnum:
		s, err := d.enum(n)
		if err != nil {
			return nil, err
		}
		return validString(s), nil
	case kindString:
		b, err := d.counted("string")
		if err != nil {
			return nil, err
		}
		return validString(d.str(b)), nil
	}
	b, err := d.raw(n) // bytes, fixed
	if err != nil {
		return nil, err
	}
	return latin1String(b), nil
}

func (d *Decoder) anyRecord(n *node) (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	obj := make(map[string]any, len(n.fields))
	for i := range n.fields {
		v, err := d.anyValue(n.fields[i].node)
		if err != nil {
			return nil, err
		}
		obj[n.fields[i].name] = v
	}
	d.leave()
	return obj, nil
}

// anyCollection decodes an array or a map, as collection does.
func (d *Decoder) anyCollection(n *node) (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
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
				b, err := d.counted("map key")
				if err != nil {
					return nil, err
				}
				key = validString(d.str(b))
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
	d.leave()
	if obj != nil {
		return obj, nil
	}
	return arr, nil
}

// textChunk is how much of a block str copies at once.
const textChunk = 64 << 10

// str returns b, the bytes just read (before d.pos), as a string. Strings share copies of
// the block made a chunk at a time, as decoding reaches them: one string
// per value would cost an allocation each, and one copy of the whole block
// would be pinned by every batch, however few bytes its events span.
func (d *Decoder) str(b []byte) string {
	l := len(b)
	if l == 0 {
		return ""
	}
	at := d.pos - l
	if at < d.textBase || at+l > d.textBase+len(d.text) {
		d.text, d.textBase = string(d.data[at:min(len(d.data), at+max(l, textChunk))]), at
	}
	return d.text[at-d.textBase : at-d.textBase+l]
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
