// Package deadletter reads the dead letter files that the tests' pipelines
// write, for the tests of plugin/segment and e2e alike.
package deadletter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

// Letter is one line of a dead letter file. The shipped configs write
// {error, event_type, source, message}; a bare fallback writes the call
// itself with an error field.
type Letter struct {
	ID        string // the call's messageId, or the id of an event that could not be mapped
	Error     string
	EventType string
	Source    string // the object key, or the request
	Message   string // the message as written, JSON: the call, or the event (a malformed one may be no object)
}

// Read reads the file at path; none if it does not exist (yet). What is not
// JSON fails the test, unless tolerant: a run killed mid-write can leave a
// cut last value.
func Read(t testing.TB, path string, tolerant bool) []Letter {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []Letter
	// Values one after the other, not lines: a SIGKILL during a line's write
	// leaves it without its newline, which glues the next run's first line
	// to it unless the binary ends it at start.
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var d struct {
			Error     any             `json:"error"`
			EventType any             `json:"event_type"`
			Source    any             `json:"source"`
			MessageID string          `json:"messageId"`
			Message   json.RawMessage `json:"message"`
		}
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			if tolerant {
				break // a run killed mid-write can leave a cut last value
			}
			t.Fatalf("dead letter file %s is not JSON values: %v", path, err)
		}
		// A call carries the event id as messageId; an event that could not
		// be mapped is there as it came, with its id.
		id := d.MessageID
		var message map[string]any
		_ = json.Unmarshal(d.Message, &message) // none when it is no object
		if id == "" {
			id, _ = message["messageId"].(string)
		}
		if id == "" {
			id, _ = message["id"].(string)
		}
		out = append(out, Letter{ID: id, Error: str(d.Error), EventType: str(d.EventType), Source: str(d.Source), Message: string(d.Message)})
	}
	return out
}

// str is v as text, "" for a JSON null or a missing field.
func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
