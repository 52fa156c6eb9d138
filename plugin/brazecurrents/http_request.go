package brazecurrents

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// httpEvent is one event of a Custom HTTP request: flattened to the shape of
// a storage record, with its type, or, when it is malformed, the reason and
// the event's bytes as received, so that it goes on to the error path.
type httpEvent struct {
	eventType string // of a malformed event, its event_type when it is a string
	record    map[string]any
	raw       jsontext.Value // a malformed event's own JSON, as received
	err       error          // why the event is malformed; nil for a good one
}

// parseHTTPEvents reads a Custom HTTP request body, {"events": [event, …]},
// where each event is {"event_type", "id", "time", "properties": {…},
// "user": {…}}. It refuses the whole body, with a short reason, when nothing
// can be split out of it: not one JSON object, a key named twice outside the
// events, no events array. An event of it that is malformed (not an object,
// no event_type, properties or user that are not objects, a field that
// properties, user and the event itself disagree on, a key named twice in
// it) is returned with the reason, rather than guessed at.
//
// Numbers become int64 when they are integers that fit, float64 otherwise,
// as the bucket input's structured events have them.
func parseHTTPEvents(body []byte) ([]httpEvent, error) {
	scan, err := scanHTTPBody(body)
	if err != nil {
		return nil, err
	}
	return decodeHTTPEvents(body, scan)
}

// newBodyDecoder reads a body. Invalid UTF-8 is let through, as encoding/json
// replaces it. With allowDup, a key named twice is checked for by the
// callers, at the top level and within each value (an event's alone), not
// by the decoder, which refuses the whole body for it.
func newBodyDecoder(body []byte, allowDup bool) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(allowDup))
}

// httpScan is what scanHTTPBody found: how many events the body holds, and
// whether it names no key twice anywhere; for a body with events nested too
// deep, the body to decode instead and those events (scanTooDeep).
type httpScan struct {
	events  int
	dupFree bool
	shallow []byte
	deep    map[int]jsontext.Value
}

// scanHTTPBody checks the body's shape (walkHTTPBody) and counts its
// events. It builds no value: the events can be counted before the memory
// of decoding them is spent. Most bodies name no key twice: a first walk
// whose decoder refuses duplicates tells so, and spares each event its own
// check; a body it refuses for one is walked again, allowing them.
func scanHTTPBody(body []byte) (httpScan, error) {
	scan, err := scanBody(body)
	if deep := (*tooDeepEvent)(nil); errors.As(err, &deep) {
		return scanTooDeep(body, deep)
	}
	return scan, err
}

func scanBody(body []byte) (httpScan, error) {
	n := 0
	count := func(dec *jsontext.Decoder) error {
		start := dec.InputOffset()
		n++
		if err := dec.SkipValue(); err != nil {
			if isTooDeep(err) {
				return &tooDeepEvent{index: n - 1, start: start, err: err}
			}
			return bodyError(err)
		}
		return nil
	}
	err := walkHTTPBody(body, false, count)
	if !errors.Is(err, jsontext.ErrDuplicateName) {
		return httpScan{events: n, dupFree: err == nil}, err
	}
	n = 0
	err = walkHTTPBody(body, true, count)
	return httpScan{events: n}, err
}

// walkHTTPBody checks the body's syntax, that no key is named twice outside
// the events (encoding/json would keep the last value: a first "events"
// array would be answered 200 and delivered nowhere), and that it is one
// object with an "events" array, and calls each with the body's decoder at
// every event, which each reads whole. Unless allowDup, a key named twice
// anywhere fails the walk with jsontext.ErrDuplicateName.
func walkHTTPBody(body []byte, allowDup bool, each func(dec *jsontext.Decoder) error) error {
	dec := newBodyDecoder(body, allowDup)
	if k := dec.PeekKind(); k != '{' && k != 0 {
		if err := readWhole(dec); err != nil {
			return err
		}
		return fmt.Errorf("the body is a JSON %s, not an object with an events array", kindName(k))
	}
	if _, err := dec.ReadToken(); err != nil {
		return bodyError(err)
	}
	found := false
	names := map[string]bool{}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return bodyError(err)
		}
		name := tok.String()
		if names[name] {
			return fmt.Errorf("the key %q appears twice", name)
		}
		names[name] = true
		if name != "events" {
			v, err := dec.ReadValue()
			if err != nil {
				return bodyError(err)
			}
			if err := duplicateKey(v); err != nil {
				return fmt.Errorf("%w in %s", err, strings.Join(append([]string{name}, pathOf(err)...), "."))
			}
			continue
		}
		if k := dec.PeekKind(); k != '[' && k != 0 {
			if err := readWhole(dec); err != nil {
				return err
			}
			return fmt.Errorf(`"events" is a JSON %s, not an array`, kindName(k))
		}
		if _, err := dec.ReadToken(); err != nil {
			return bodyError(err)
		}
		found = true
		for dec.PeekKind() != ']' && dec.PeekKind() != 0 {
			if err := each(dec); err != nil {
				return err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return bodyError(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return bodyError(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return errors.New("the body holds more than one JSON value")
	}
	if !found {
		return errors.New(`the body has no "events" array`)
	}
	return nil
}

// readWhole reads the value of a kind the body should not have there, and
// the token after it, so that one which only starts like a literal
// ("notjson", "nullx") is reported as not JSON rather than by the kind of
// its first byte.
func readWhole(dec *jsontext.Decoder) error {
	if _, err := dec.ReadValue(); err != nil {
		return bodyError(err)
	}
	if _, err := dec.ReadToken(); err != nil && !errors.Is(err, io.EOF) {
		return bodyError(err)
	}
	return nil
}

// bodyError words a syntax error of the body.
func bodyError(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("the body is not JSON: %w", err)
}

// dupKeyError is a key named twice in a value, and where in it.
type dupKeyError struct {
	key  string
	path []string // from the value down to the object naming key twice
}

func (e *dupKeyError) Error() string { return fmt.Sprintf("the key %q appears twice", e.key) }

func pathOf(err error) []string {
	var d *dupKeyError
	if errors.As(err, &d) {
		return d.path
	}
	return nil
}

// duplicateKey returns a *dupKeyError for the first key named twice in an
// object of v, a valid JSON value, or nil.
func duplicateKey(v jsontext.Value) error {
	if v.Kind() != '{' && v.Kind() != '[' || v.IsValid(jsontext.AllowInvalidUTF8(true)) {
		return nil
	}
	err := jsontext.NewDecoder(bytes.NewBuffer(v), jsontext.AllowInvalidUTF8(true)).SkipValue()
	var serr *jsontext.SyntacticError
	if !errors.As(err, &serr) || !errors.Is(err, jsontext.ErrDuplicateName) {
		return nil // not a duplicate: the body's scan accepted the rest
	}
	return &dupKeyError{key: serr.JSONPointer.LastToken(), path: slices.Collect(serr.JSONPointer.Parent().Tokens())}
}

// decodeHTTPEvents decodes a body as scanHTTPBody found it: its syntax and
// shape are known to be right. A body that names no key twice is decoded in
// place; otherwise each event is checked on its own bytes first. A malformed
// event keeps its bytes, with its reason.
func decodeHTTPEvents(body []byte, scan httpScan) ([]httpEvent, error) {
	if scan.shallow != nil {
		body = scan.shallow
	}
	events := make([]httpEvent, 0, scan.events)
	d := newEventDecoder()
	err := walkHTTPBody(body, true, func(dec *jsontext.Decoder) error {
		i := len(events)
		start := dec.InputOffset()
		if !scan.dupFree {
			if _, err := dec.ReadValue(); err != nil {
				return bodyError(err)
			}
			raw := bodyValue(body, start, dec)
			events = append(events, decodeHTTPEvent(d, i, raw, duplicateKey(raw)))
			return nil
		}
		e, err := d.event(dec)
		if dec.StackDepth() != 2 { // not read whole: the decoder failed, which the scan rules out
			return fmt.Errorf("event %d: %w", i, err)
		}
		if err != nil {
			e = malformedHTTPEvent(d, i, bodyValue(body, start, dec), err)
		}
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(events) != scan.events {
		return nil, fmt.Errorf("the body holds %d events, not the %d its scan counted", len(events), scan.events)
	}
	for i, raw := range scan.deep {
		events[i] = tooDeepHTTPEvent(i, raw)
	}
	return events, nil
}

// bodyValue is the value the decoder has just read from body, since start
// (its offset before the read, so before any comma and whitespace): a slice
// of body, valid as long as the body is, unlike the decoder's own.
func bodyValue(body []byte, start int64, dec *jsontext.Decoder) jsontext.Value {
	end := int(dec.InputOffset())
	return jsontext.Value(bytes.TrimLeft(body[start:end:end], " \t\r\n,"))
}

// decodeHTTPEvent is the event of index i, whose JSON is raw, and which
// names a key twice when dup is not nil.
func decodeHTTPEvent(d *eventDecoder, i int, raw jsontext.Value, dup error) httpEvent {
	if dup != nil {
		if path := pathOf(dup); len(path) > 0 {
			dup = fmt.Errorf("%w in %s", dup, strings.Join(path, "."))
		}
		return malformedHTTPEvent(d, i, raw, dup)
	}
	e, err := d.eventOf(raw)
	if err != nil {
		return malformedHTTPEvent(d, i, raw, err)
	}
	return e
}

// malformedHTTPEvent is the event of index i, whose JSON is raw, refused for
// err.
func malformedHTTPEvent(d *eventDecoder, i int, raw jsontext.Value, err error) httpEvent {
	// Answered 400, Braze would re-send the request's events one by one and
	// drop this one for good: it goes on to the error path instead, and the
	// id is what a reader of the dead letter and the log finds it by.
	e := httpEvent{raw: raw}
	var id string
	var hasID bool
	v, _ := d.any(raw) // valid JSON: the body's walk read it
	if obj, ok := v.(map[string]any); ok {
		e.eventType, _ = obj["event_type"].(string)
		id, hasID = obj["id"].(string)
	}
	e.err = eventError(i, id, hasID, err)
	return e
}

// eventError is err of the event of index i, and of id when it has a string
// one.
func eventError(i int, id string, hasID bool, err error) error {
	if !hasID {
		return fmt.Errorf("event %d: %w", i, err)
	}
	if len(id) > 100 { // a Braze id is a UUID; keep the log line short
		id = id[:100] + "…"
	}
	return fmt.Errorf("event %d (id %q): %w", i, id, err)
}

// kindName names a JSON kind.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '0':
		return "number"
	case '"':
		return "string"
	case '[':
		return "array"
	}
	return "object"
}
