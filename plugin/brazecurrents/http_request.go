package brazecurrents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// httpEvent is one event of a Custom HTTP request, flattened to the shape of
// a storage record, and its type.
type httpEvent struct {
	eventType string
	record    map[string]any
}

// parseHTTPEvents reads a Custom HTTP request body, {"events": [event, …]},
// where each event is {"event_type", "id", "time", "properties": {…},
// "user": {…}}. It refuses the whole body, with a short reason, rather than
// guess: not one JSON object, a key named twice in an object, no events array, an event that is not an object
// or has no event_type, properties or user that are not objects, or a field
// that properties, user and the event itself disagree on.
//
// Numbers become int64 when they are integers that fit, float64 otherwise,
// as the bucket input's structured events have them.
func parseHTTPEvents(body []byte) ([]httpEvent, error) {
	n, err := scanHTTPBody(body)
	if err != nil {
		return nil, err
	}
	return decodeHTTPEvents(body, n)
}

// scanHTTPBody checks the body's syntax, that no object in it names a key
// twice (encoding/json would keep the last value: a first "events" array
// would be answered 200 and delivered nowhere), and that it is one object
// with an "events" array, whose length it returns. It builds no value: the
// events can be counted before the memory of decoding them is spent.
func scanHTTPBody(body []byte) (int, error) {
	// Invalid UTF-8 is let through, as encoding/json replaces it.
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowInvalidUTF8(true))
	if k := dec.PeekKind(); k != '{' && k != 0 {
		return 0, fmt.Errorf("the body is a JSON %s, not an object with an events array", kindName(k))
	}
	if _, err := dec.ReadToken(); err != nil {
		return 0, bodyError(err)
	}
	n := -1
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return 0, bodyError(err)
		}
		if name.String() != "events" {
			if err := dec.SkipValue(); err != nil {
				return 0, bodyError(err)
			}
			continue
		}
		if k := dec.PeekKind(); k != '[' && k != 0 {
			return 0, fmt.Errorf(`"events" is a JSON %s, not an array`, kindName(k))
		}
		if _, err := dec.ReadToken(); err != nil {
			return 0, bodyError(err)
		}
		for n = 0; dec.PeekKind() != ']' && dec.PeekKind() != 0; n++ {
			if err := dec.SkipValue(); err != nil {
				return 0, bodyError(err)
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return 0, bodyError(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return 0, bodyError(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return 0, errors.New("the body holds more than one JSON value")
	}
	if n < 0 {
		return 0, errors.New(`the body has no "events" array`)
	}
	return n, nil
}

// bodyError words a syntax error of the body; a key named twice, with the
// event it is in.
func bodyError(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	var serr *jsontext.SyntacticError
	if !errors.As(err, &serr) || !errors.Is(err, jsontext.ErrDuplicateName) {
		return fmt.Errorf("the body is not JSON: %w", err)
	}
	msg := fmt.Sprintf("the key %q appears twice", serr.JSONPointer.LastToken())
	path := slices.Collect(serr.JSONPointer.Parent().Tokens())
	if len(path) >= 2 && path[0] == "events" {
		msg, path = "event "+path[1]+": "+msg, path[2:]
	}
	if len(path) > 0 {
		msg += " in " + strings.Join(path, ".")
	}
	return errors.New(msg)
}

// decodeHTTPEvents decodes a body that scanHTTPBody found to hold n events:
// its syntax and shape are known to be right.
func decodeHTTPEvents(body []byte, n int) ([]httpEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("the body is not JSON: %w", err)
	}
	list, _ := top["events"].([]any)
	if len(list) != n {
		return nil, fmt.Errorf("the body holds %d events, not the %d its scan counted", len(list), n)
	}
	events := make([]httpEvent, 0, n)
	for i, v := range list {
		e, err := flattenHTTPEvent(v)
		if err != nil {
			// Braze re-sends a 400ed request's events one by one and drops
			// each answered 400 again: the id is what is left to find it by.
			if obj, ok := v.(map[string]any); ok {
				if id, ok := obj["id"].(string); ok {
					if len(id) > 100 { // a Braze id is a UUID; keep the log line short
						id = id[:100] + "…"
					}
					return nil, fmt.Errorf("event %d (id %q): %w", i, id, err)
				}
			}
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// flattenHTTPEvent moves properties and user to the top level, as a storage
// record has them, so that the same mapping reads both.
func flattenHTTPEvent(v any) (httpEvent, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return httpEvent{}, fmt.Errorf("a JSON %s, not an object", jsonKind(v))
	}
	eventType, ok := obj["event_type"].(string)
	if !ok || eventType == "" {
		return httpEvent{}, errors.New("no event_type")
	}
	props, _ := obj["properties"].(map[string]any)
	user, _ := obj["user"].(map[string]any)
	record := make(map[string]any, len(obj)+len(props)+len(user))
	for k, v := range obj {
		switch k {
		case "event_type", "properties", "user":
		default:
			record[k] = numbers(v)
		}
	}
	for _, part := range [...]string{"properties", "user"} {
		inner, ok := obj[part].(map[string]any)
		if !ok {
			if obj[part] == nil {
				continue
			}
			return httpEvent{}, fmt.Errorf("%s is a JSON %s, not an object", part, jsonKind(obj[part]))
		}
		for k, v := range inner {
			if _, taken := record[k]; taken {
				return httpEvent{}, fmt.Errorf("%s.%s collides with a field of the same name", part, k)
			}
			record[k] = numbers(v)
		}
	}
	return httpEvent{eventType: eventType, record: record}, nil
}

// numbers turns the json.Numbers in v into int64 or float64, in place.
func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			// Beyond float64's range: encoding/json accepted it as a
			// number, so it is one; keep the text rather than lose it.
			return string(t)
		}
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = numbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbers(x)
		}
	}
	return v
}

// kindName names a JSON kind as jsonKind does.
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

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
