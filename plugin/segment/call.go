package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
	"unicode/utf8"

	"github.com/segmentio/analytics-go/v3"
	segjson "github.com/segmentio/encoding/json"
)

// wireCall is one Segment call as a message carries it: the fields of the
// Tracking API spec.
type wireCall struct {
	Type, MessageID, UserID, AnonymousID, Timestamp string
	Event, Name, GroupID, PreviousID                string
	Properties, Traits, Context, Integrations       map[string]any
}

// rawCall is the JSON form of wireCall. Unknown fields are refused rather
// than dropped, so that nothing a mapping produced is silently lost.
type rawCall struct {
	Type         string    `json:"type"`
	MessageID    string    `json:"messageId"`
	UserID       string    `json:"userId"`
	AnonymousID  string    `json:"anonymousId"`
	Timestamp    string    `json:"timestamp"`
	Event        string    `json:"event"`
	Name         string    `json:"name"`
	GroupID      string    `json:"groupId"`
	PreviousID   string    `json:"previousId"`
	Properties   rawObject `json:"properties"`
	Traits       rawObject `json:"traits"`
	Context      rawObject `json:"context"`
	Integrations rawObject `json:"integrations"`
}

// rawObject is a JSON object decoded one level deep: its values stay raw
// JSON, which analytics-go marshals back as they are. Decoding properties into
// Go values only to encode them again was most of the output's CPU time.
type rawObject map[string]json.RawMessage

func (r rawObject) values() map[string]any {
	if r == nil {
		return nil
	}
	m := make(map[string]any, len(r))
	for k, v := range r {
		m[k] = v
	}
	return m
}

// maxMessageIDLen is Segment's limit on messageId (under 100 characters).
const maxMessageIDLen = 99

// parseCall reads a message body as a Segment call, checked by analytics-go's
// own rules (identity, event, groupId, previousId), and returns it with its
// JSON as it goes on the wire.
func parseCall(body []byte) (wireCall, []byte, error) {
	// The body goes on the wire as it is, so it is read as Segment reads it:
	// field names matched exactly (Go's decoders ignore case by default) and
	// nothing after the object (a "]" there would end the request's batch).
	var r rawCall
	rest, err := segjson.Parse(body, &r, segjson.DisallowUnknownFields|segjson.DontMatchCaseInsensitiveStructFields)
	if err != nil {
		return wireCall{}, nil, fmt.Errorf("not a Segment call: %w", err)
	}
	if len(rest) > 0 {
		return wireCall{}, nil, errors.New("not a Segment call: data after the JSON object")
	}
	c := wireCall{Type: r.Type, MessageID: r.MessageID, UserID: r.UserID, AnonymousID: r.AnonymousID,
		Timestamp: r.Timestamp, Event: r.Event, Name: r.Name, GroupID: r.GroupID, PreviousID: r.PreviousID,
		Properties: r.Properties.values(), Traits: r.Traits.values(), Context: r.Context.values(),
		Integrations: r.Integrations.values()}
	if err := checkCall(&c, func() ([]byte, error) { return body, nil }); err != nil {
		return wireCall{}, nil, named(r.Type, r.MessageID, err)
	}
	if r.MessageID == "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return wireCall{}, nil, err
		}
		id, _ := json.Marshal(c.MessageID)
		obj["messageId"] = id
		wire, err := segjson.Marshal(obj)
		return c, wire, err
	}
	if bytes.ContainsAny(body, "\r\n") {
		// One call per line in dry runs; otherwise the body goes as it is.
		var wire bytes.Buffer
		if err := json.Compact(&wire, body); err != nil {
			return wireCall{}, nil, err
		}
		return c, wire.Bytes(), nil
	}
	return c, body, nil
}

// structuredCall reads a structured message (what a mapping left) as a
// Segment call without encoding it to JSON and parsing it back, checks it,
// and appends the call's JSON as it goes on the wire to buf, encoded with
// flags (keys sorted or not). body serialises the message, needed only to
// derive a missing messageId.
func structuredCall(v any, body func() ([]byte, error), buf []byte, flags segjson.AppendFlags) (wireCall, []byte, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return wireCall{}, buf, fmt.Errorf("not a Segment call: a %T, not an object", v)
	}
	// Unsorted, each field is encoded as it is read: going over the call's
	// fields once, not twice, took 4% off the output's CPU. messageId, read
	// here, is encoded last, as it may be derived.
	start := len(buf)
	unsorted := flags&segjson.SortMapKeys == 0
	if unsorted {
		buf = append(buf, '{')
	}
	var c wireCall
	for key, value := range obj {
		var err error
		if err = readField(&c, key, value); err != nil {
			return wireCall{}, buf[:start], namedObject(obj, fmt.Errorf("not a Segment call: %w", err))
		}
		if !unsorted || key == "messageId" {
			continue
		}
		if len(buf) > start+1 {
			buf = append(buf, ',')
		}
		buf = segjson.AppendEscape(buf, key, flags)
		buf = append(buf, ':')
		if buf, err = appendJSON(buf, value, flags); err != nil {
			return wireCall{}, buf[:start], fmt.Errorf("not a Segment call: %w", err)
		}
	}
	given := c.MessageID
	if err := checkCall(&c, body); err != nil {
		return wireCall{}, buf[:start], named(c.Type, given, err)
	}
	if unsorted {
		if len(buf) > start+1 {
			buf = append(buf, ',')
		}
		buf = append(buf, `"messageId":`...)
		buf = segjson.AppendEscape(buf, c.MessageID, flags)
		return c, append(buf, '}'), nil
	}
	if given == "" {
		obj = maps.Clone(obj)
		obj["messageId"] = c.MessageID
	}
	// Dry runs: segmentio/encoding sorts the keys, as encoding/json would,
	// about twice as fast.
	buf, err := appendJSON(buf, obj, flags)
	if err != nil {
		return wireCall{}, buf[:start], fmt.Errorf("not a Segment call: %w", err)
	}
	return c, buf, nil
}

// readField reads one field of a structured call into c.
func readField(c *wireCall, key string, value any) error {
	var err error
	switch key {
	case "type":
		c.Type, err = stringField(key, value)
	case "messageId":
		c.MessageID, err = stringField(key, value)
	case "userId":
		c.UserID, err = stringField(key, value)
	case "anonymousId":
		c.AnonymousID, err = stringField(key, value)
	case "timestamp":
		c.Timestamp, err = stringField(key, value)
	case "event":
		c.Event, err = stringField(key, value)
	case "name":
		c.Name, err = stringField(key, value)
	case "groupId":
		c.GroupID, err = stringField(key, value)
	case "previousId":
		c.PreviousID, err = stringField(key, value)
	case "properties":
		c.Properties, err = objectField(key, value)
	case "traits":
		c.Traits, err = objectField(key, value)
	case "context":
		c.Context, err = objectField(key, value)
	case "integrations":
		c.Integrations, err = objectField(key, value)
	default:
		err = fmt.Errorf("unknown field %q", key)
	}
	return err
}

// named puts before the error of a call the call's type and the messageId
// it came with, if any: it is what Connect logs for the batch and what the
// dead letter keeps, and the reason alone (a field at fault, Segment's
// "call 0") did not say which call it was.
func named(typ, messageID string, err error) error {
	if messageID == "" {
		return err
	}
	return fmt.Errorf("%s: %w", callName(typ, messageID), err)
}

// namedObject is named for a structured call whose fields could not all be
// read: its type and messageId, when they are strings.
func namedObject(obj map[string]any, err error) error {
	typ, _ := obj["type"].(string)
	id, _ := obj["messageId"].(string)
	return named(typ, id, err)
}

// wireName names a call by its wire JSON, read back only when it failed.
func wireName(wire []byte) string {
	var c struct {
		Type      string `json:"type"`
		MessageID string `json:"messageId"`
	}
	_ = json.Unmarshal(wire, &c) // read and checked before it was sent
	return callName(c.Type, c.MessageID)
}

func callName(typ, messageID string) string {
	switch typ {
	case "track", "identify", "page", "screen", "group", "alias":
		return fmt.Sprintf("the %s call with messageId %q", typ, messageID)
	}
	return fmt.Sprintf("the call with messageId %q", messageID)
}

func stringField(key string, v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s is a %T, not a string", key, v)
}

func objectField(key string, v any) (map[string]any, error) {
	switch o := v.(type) {
	case map[string]any:
		return o, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("%s is a %T, not an object", key, v)
}

// checkCall checks a call with analytics-go's typed calls and their
// Validate, and gives it a messageId derived from body when it has none.
// The typed calls are built for the check alone, on the stack: the wire form
// is the message's own JSON.
func checkCall(c *wireCall, body func() ([]byte, error)) error {
	if c.MessageID == "" {
		raw, err := body()
		if err != nil {
			return err
		}
		c.MessageID = derivedMessageID(raw)
	}
	if n := utf8.RuneCountInString(c.MessageID); n > maxMessageIDLen {
		return fmt.Errorf("messageId is %d characters, Segment allows at most %d", n, maxMessageIDLen)
	}
	if c.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, c.Timestamp); err != nil {
			return fmt.Errorf("timestamp %q is not ISO-8601: %w", c.Timestamp, err)
		}
	}
	var err error
	switch c.Type {
	case "track":
		err = analytics.Track{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Event: c.Event, Properties: c.Properties}.Validate()
	case "identify":
		err = analytics.Identify{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Traits: c.Traits}.Validate()
	case "page":
		err = analytics.Page{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Name: c.Name, Properties: c.Properties}.Validate()
	case "screen":
		err = analytics.Screen{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Name: c.Name, Properties: c.Properties}.Validate()
	case "group":
		err = analytics.Group{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, GroupId: c.GroupID, Traits: c.Traits}.Validate()
	case "alias":
		err = analytics.Alias{MessageId: c.MessageID, UserId: c.UserID, PreviousId: c.PreviousID}.Validate()
	case "":
		return errors.New("call has no type (track, identify, page, screen, group or alias)")
	default:
		return fmt.Errorf("call type %q is not one of track, identify, page, screen, group, alias", c.Type)
	}
	if err != nil {
		return fmt.Errorf("invalid %s call: %w", c.Type, err)
	}
	return checkFieldsFor(*c)
}

// checkFieldsFor refuses fields the call's type does not carry, which
// analytics-go would otherwise drop without a word.
func checkFieldsFor(c wireCall) error {
	for _, f := range [...]struct {
		name   string
		unused bool
	}{
		{"event", c.Event != "" && c.Type != "track"},
		{"name", c.Name != "" && c.Type != "page" && c.Type != "screen"},
		{"groupId", c.GroupID != "" && c.Type != "group"},
		{"previousId", c.PreviousID != "" && c.Type != "alias"},
		{"properties", c.Properties != nil && c.Type != "track" && c.Type != "page" && c.Type != "screen"},
		{"traits", c.Traits != nil && c.Type != "identify" && c.Type != "group"},
		{"anonymousId", c.AnonymousID != "" && c.Type == "alias"},
	} {
		if f.unused {
			return fmt.Errorf("%s calls have no %s field", c.Type, f.name)
		}
	}
	return nil
}

// derivedMessageID is a stable id for a call that has none: derived from its
// content, so that a redelivered message is deduplicated by Segment.
func derivedMessageID(body []byte) string {
	sum := sha256.Sum256(body)
	return "cc-" + hex.EncodeToString(sum[:16])
}
