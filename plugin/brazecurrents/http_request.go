package brazecurrents

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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
// guess: not one JSON object, no events array, an event that is not an object
// or has no event_type, properties or user that are not objects, or a field
// that properties, user and the event itself disagree on.
//
// Numbers become int64 when they are integers that fit, float64 otherwise,
// as the bucket input's structured events have them.
func parseHTTPEvents(body []byte) ([]httpEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("the body is not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("the body holds more than one JSON value")
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the body is a JSON %s, not an object with an events array", jsonKind(top))
	}
	raw, ok := obj["events"]
	if !ok {
		return nil, errors.New(`the body has no "events" array`)
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf(`"events" is a JSON %s, not an array`, jsonKind(raw))
	}
	events := make([]httpEvent, 0, len(list))
	for i, v := range list {
		e, err := flattenHTTPEvent(v)
		if err != nil {
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
	record := make(map[string]any, len(obj)+16)
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
