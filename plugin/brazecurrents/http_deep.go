package brazecurrents

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// maxJSONDepth is how deep jsontext reads JSON, counted from the body's top
// (the body's object and the events array are two of the levels), and
// encoding/json, with which Connect reads a message's JSON, as deep. Neither
// can be set.
const maxJSONDepth = 10000

// tooDeepEvent is the body scan's error for an event nested deeper than
// maxJSONDepth: the scan stops there, unable to find where the event ends.
type tooDeepEvent struct {
	index int   // the event's index in the events array
	start int64 // its offset in the body, before the comma and spaces ahead of it
	err   error // the decoder's
}

func (e *tooDeepEvent) Error() string { return bodyError(e.err).Error() }

// isTooDeep tells jsontext's error for a value nested deeper than it reads:
// not exported, it is told by its words.
func isTooDeep(err error) bool {
	var serr *jsontext.SyntacticError
	return errors.As(err, &serr) && serr.Err != nil && strings.Contains(serr.Err.Error(), "exceeded max depth")
}

// scanTooDeep scans a body whose scan stopped at an event nested too deep
// (first). Answered 400, Braze would re-send each event alone and drop this
// one for good; refused whole, the request's other events would wait for
// that. From first on, each event of the array is delimited by its brackets
// alone (outside strings), and each nested too deep is replaced by null in a
// copy of the body, the scan's shallow, which is decoded instead: its events
// come back as usual, and the ones too deep malformed (tooDeepHTTPEvent).
// What a too deep event holds past the depth is not checked: it is delimited
// and kept as text.
func scanTooDeep(body []byte, first *tooDeepEvent) (httpScan, error) {
	shallow := make([]byte, 0, len(body))
	shallow = append(shallow, body[:first.start]...)
	deep := map[int]jsontext.Value{}
	rest := body[first.start:]
	for i := first.index; ; i++ {
		lead := len(rest) - len(bytes.TrimLeft(rest, " \t\r\n,"))
		shallow, rest = append(shallow, rest[:lead]...), rest[lead:]
		if len(rest) == 0 || rest[0] == ']' {
			break
		}
		n, depth := valueExtent(rest)
		if n == 0 { // the body ends inside it
			return httpScan{}, first
		}
		if depth > maxJSONDepth-2 { // the body's object and events array are two levels
			deep[i] = rest[:n]
			shallow = append(shallow, "null"...)
		} else {
			shallow = append(shallow, rest[:n]...)
		}
		rest = rest[n:]
	}
	shallow = append(shallow, rest...)
	scan, err := scanBody(shallow)
	if again := (*tooDeepEvent)(nil); errors.As(err, &again) {
		return httpScan{}, first // delimited otherwise than jsontext reads it: not JSON
	}
	scan.shallow, scan.deep = shallow, deep
	return scan, err
}

// valueExtent returns the length of the JSON value b starts with, and how
// deep it nests (an object or an array is one level), by its brackets and
// strings alone; 0 when b ends inside it.
func valueExtent(b []byte) (n, maxDepth int) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end := stringEnd(b[i:])
			if end == 0 {
				return 0, maxDepth
			}
			i += end - 1
		case c == '{' || c == '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == '}' || c == ']':
			if depth == 0 { // a scalar's end
				return i, maxDepth
			}
			depth--
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return i, maxDepth
		default:
			continue
		}
		if depth == 0 {
			return i + 1, maxDepth
		}
	}
	if depth == 0 {
		return len(b), maxDepth
	}
	return 0, maxDepth
}

// stringEnd is the length of the JSON string b starts with, quotes
// included; 0 when b ends inside it.
func stringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return 0
}

// tooDeepHTTPEvent is the event of index i, whose JSON is raw, nested deeper
// than maxJSONDepth: malformed, its content raw as a JSON string, its
// event_type and id taken from the string fields ahead of what is too deep.
func tooDeepHTTPEvent(i int, raw jsontext.Value) httpEvent {
	quoted, _ := jsontext.AppendQuote(nil, raw) // invalid UTF-8 replaced, as elsewhere
	e := httpEvent{raw: quoted}
	dec := jsontext.NewDecoder(bytes.NewReader(raw), eventDecodeOptions...)
	var id string
	var hasID bool
	if _, err := dec.ReadToken(); err == nil {
		for dec.PeekKind() == '"' {
			tok, err := dec.ReadToken()
			if err != nil {
				break
			}
			name := tok.String() // the token is valid until the next read
			if dec.PeekKind() != '"' {
				if dec.SkipValue() != nil {
					break // the value too deep
				}
				continue
			}
			v, err := dec.ReadToken()
			if err != nil {
				break
			}
			switch name {
			case "event_type":
				e.eventType = v.String()
			case "id":
				id, hasID = v.String(), true
			}
		}
	}
	e.err = eventError(i, id, hasID, fmt.Errorf("nested deeper than the %d levels of arrays and objects JSON is read to (the request's object and events array are two of them)", maxJSONDepth))
	return e
}
