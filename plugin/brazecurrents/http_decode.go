package brazecurrents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// eventDecoder builds a Custom HTTP event's record straight from its JSON,
// read with jsontext: flattened as a storage record has it, in one map sized
// once, numbers as the bucket input's structured events have them.
// encoding/json into map[string]any, then a flattened copy with its numbers
// converted, took twice the time (BenchmarkParseHTTPEvents). Values are what
// encoding/json would give with UseNumber, numbers then converted
// (FuzzParseHTTPEvents checks it). One decoder serves one request.
type eventDecoder struct {
	dec   *jsontext.Decoder // what is being read: the body's, or own
	r     bytes.Reader      // own's input
	own   *jsontext.Decoder // reads a value apart from the body
	names map[string]string // object names as received → as decoded, shared by the events
	buf   []byte            // unquoting escaped strings
	top   []member          // the event's own fields, but for event_type
	parts [2][]member       // the members of properties and user
}

type member struct {
	name  string
	value any
}

// flattenedParts are the event's objects whose members move to the top
// level, in the order their names are checked against those already there.
var flattenedParts = [2]string{"properties", "user"}

const (
	maxSharedNames   = 1024 // per request, so that odd keys cannot grow it much
	maxSharedNameLen = 128
)

// The body was checked already: invalid UTF-8 is let through, to be replaced
// as encoding/json does, and keys named twice are looked for apart.
var eventDecodeOptions = []jsontext.Options{jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)}

func newEventDecoder() *eventDecoder {
	return &eventDecoder{own: jsontext.NewDecoder(bytes.NewReader(nil)), names: map[string]string{}}
}

// event reads the event at dec, of a body that walkHTTPBody accepted, whole
// unless dec fails, and flattens it: properties and user move to the top
// level. It refuses an event that is not an object, has no event_type,
// properties or user that are not objects, or a field that properties, user
// and the event itself disagree on.
func (d *eventDecoder) event(dec *jsontext.Decoder) (httpEvent, error) {
	d.dec = dec
	clear(d.top) // let go of the last event's values
	clear(d.parts[0])
	clear(d.parts[1])
	d.top, d.parts[0], d.parts[1] = d.top[:0], d.parts[0][:0], d.parts[1][:0]
	if k := d.dec.PeekKind(); k != '{' {
		if err := d.dec.SkipValue(); err != nil {
			return httpEvent{}, err
		}
		return httpEvent{}, fmt.Errorf("a JSON %s, not an object", kindName(k))
	}
	var eventType any
	var partErrs [2]error
	err := d.object(func(name string) error {
		var err error
		switch i := partIndex(name); {
		case i >= 0:
			partErrs[i], err = d.members(i)
		case name == "event_type":
			eventType, err = d.value()
		default:
			var v any
			v, err = d.value()
			d.top = append(d.top, member{name, v})
		}
		return err
	})
	if err != nil {
		return httpEvent{}, err
	}
	t, ok := eventType.(string)
	if !ok || t == "" {
		return httpEvent{}, errors.New("no event_type")
	}
	record := make(map[string]any, len(d.top)+len(d.parts[0])+len(d.parts[1]))
	for _, m := range d.top {
		record[m.name] = m.value
	}
	for i, members := range d.parts {
		if partErrs[i] != nil {
			return httpEvent{}, partErrs[i]
		}
		for _, m := range members {
			if _, taken := record[m.name]; taken {
				return httpEvent{}, fmt.Errorf("%s.%s collides with a field of the same name", flattenedParts[i], m.name)
			}
			record[m.name] = m.value
		}
	}
	return httpEvent{eventType: t, record: record}, nil
}

// eventOf reads the event whose JSON is raw, as event does.
func (d *eventDecoder) eventOf(raw jsontext.Value) (httpEvent, error) {
	return d.event(d.ownAt(raw))
}

// any reads a value whole, as encoding/json would into an any.
func (d *eventDecoder) any(raw jsontext.Value) (any, error) {
	d.dec = d.ownAt(raw)
	return d.value()
}

// ownAt is the decoder's own, set to read raw.
func (d *eventDecoder) ownAt(raw jsontext.Value) *jsontext.Decoder {
	d.r.Reset(raw)
	d.own.Reset(&d.r, eventDecodeOptions...)
	return d.own
}

func partIndex(name string) int {
	for i, p := range flattenedParts {
		if name == p {
			return i
		}
	}
	return -1
}

// members reads the value of part i: an object's members, or nothing for
// null. Anything else is read past and refused.
func (d *eventDecoder) members(i int) (refused, err error) {
	switch k := d.dec.PeekKind(); k {
	case 'n':
		_, err := d.dec.ReadValue()
		return nil, err
	case '{':
		return nil, d.object(func(name string) error {
			v, err := d.value()
			d.parts[i] = append(d.parts[i], member{name, v})
			return err
		})
	default:
		return fmt.Errorf("%s is a JSON %s, not an object", flattenedParts[i], kindName(k)), d.dec.SkipValue()
	}
}

// object reads an object, calling member with each name once the decoder
// is at its value, which member reads.
func (d *eventDecoder) object(member func(name string) error) error {
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() == '"' {
		name, err := d.name()
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return err
}

// value reads the next value: objects as map[string]any, arrays as []any,
// numbers as int64 when they are integers that fit, as json.Number (their
// digits, sent as written) when they are integers past int64 (float64 would
// round them: 12345678901234567891 went as 12345678901234567000), float64
// otherwise, and as their text beyond float64's range.
func (d *eventDecoder) value() (any, error) {
	switch d.dec.PeekKind() {
	case '{':
		obj := map[string]any{}
		err := d.object(func(name string) (err error) {
			obj[name], err = d.value()
			return err
		})
		return obj, err
	case '[':
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, err
		}
		list := []any{}
		for k := d.dec.PeekKind(); k != ']' && k != 0; k = d.dec.PeekKind() {
			v, err := d.value()
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := d.dec.ReadToken()
		return list, err
	}
	raw, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	switch raw.Kind() {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		return d.unquote(raw), nil
	}
	return number(string(raw)), nil
}

// name reads an object's member name; a request's events share the strings
// of the names they repeat.
func (d *eventDecoder) name() (string, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", err
	}
	if s, ok := d.names[string(raw)]; ok {
		return s, nil
	}
	s := d.unquote(raw)
	if len(d.names) < maxSharedNames && len(raw) <= maxSharedNameLen {
		d.names[string(raw)] = s
	}
	return s, nil
}

// unquote decodes a JSON string, invalid UTF-8 replaced by U+FFFD as
// encoding/json does.
func (d *eventDecoder) unquote(raw jsontext.Value) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	d.buf, _ = jsontext.AppendUnquote(d.buf[:0], raw) // its error only reports the replacements
	return string(d.buf)
}

// number is a JSON number's Go value, as value() tells; encoding/json's
// reading (UseNumber) gives the same in the tests.
func number(text string) any {
	if i, err := strconv.ParseInt(text, 10, 64); err == nil {
		return i
	}
	f, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil:
		return text
	case !strings.ContainsAny(text, ".eE"):
		return json.Number(text)
	}
	return f
}
