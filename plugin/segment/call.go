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

// parseCall turns a message body into an analytics-go message, validated by
// analytics-go's own rules (identity, event, groupId, previousId), and the
// call's JSON as it goes on the wire.
func parseCall(body []byte) (analytics.Message, []byte, error) {
	var r rawCall
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("not a Segment call: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("not a Segment call: more than one JSON value")
	}
	c := wireCall{Type: r.Type, MessageID: r.MessageID, UserID: r.UserID, AnonymousID: r.AnonymousID,
		Timestamp: r.Timestamp, Event: r.Event, Name: r.Name, GroupID: r.GroupID, PreviousID: r.PreviousID,
		Properties: r.Properties.values(), Traits: r.Traits.values(), Context: r.Context.values(),
		Integrations: r.Integrations.values()}
	msg, err := buildCall(c, func() ([]byte, error) { return body, nil })
	if err != nil {
		return nil, nil, err
	}
	if r.MessageID == "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, nil, err
		}
		id, _ := json.Marshal(messageID(msg))
		obj["messageId"] = id
		wire, err := segjson.Marshal(obj)
		return msg, wire, err
	}
	if bytes.ContainsAny(body, "\r\n") {
		// One call per line in dry runs; otherwise the body goes as it is.
		var wire bytes.Buffer
		if err := json.Compact(&wire, body); err != nil {
			return nil, nil, err
		}
		return msg, wire.Bytes(), nil
	}
	return msg, body, nil
}

// structuredCall turns a structured message (what a mapping leaves) into an
// analytics-go message without encoding it to JSON and parsing it back, and
// the call's JSON as it goes on the wire. body serialises the message, needed
// only to derive a missing messageId.
func structuredCall(v any, body func() ([]byte, error)) (analytics.Message, []byte, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("not a Segment call: a %T, not an object", v)
	}
	var c wireCall
	for key, value := range obj {
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
		if err != nil {
			return nil, nil, fmt.Errorf("not a Segment call: %w", err)
		}
	}
	msg, err := buildCall(c, body)
	if err != nil {
		return nil, nil, err
	}
	if c.MessageID == "" {
		obj = maps.Clone(obj)
		obj["messageId"] = messageID(msg)
	}
	// segmentio/encoding marshals maps of any about twice as fast as
	// encoding/json, with the same output (keys sorted).
	wire, err := segjson.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("not a Segment call: %w", err)
	}
	return msg, wire, nil
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

// buildCall checks a call and makes the analytics-go message of its type.
func buildCall(c wireCall, body func() ([]byte, error)) (analytics.Message, error) {
	if c.MessageID == "" {
		raw, err := body()
		if err != nil {
			return nil, err
		}
		c.MessageID = derivedMessageID(raw)
	}
	if len(c.MessageID) > maxMessageIDLen {
		return nil, fmt.Errorf("messageId is %d characters, Segment allows at most %d", len(c.MessageID), maxMessageIDLen)
	}
	var ts time.Time
	if c.Timestamp != "" {
		var err error
		if ts, err = time.Parse(time.RFC3339Nano, c.Timestamp); err != nil {
			return nil, fmt.Errorf("timestamp %q is not ISO-8601: %w", c.Timestamp, err)
		}
	}
	var ctx *analytics.Context
	if c.Context != nil {
		// analytics-go flattens Extra into the context object as it is.
		ctx = &analytics.Context{Extra: c.Context}
	}
	integrations := analytics.Integrations(c.Integrations)

	var msg analytics.Message
	switch c.Type {
	case "track":
		msg = analytics.Track{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Event: c.Event, Properties: c.Properties, Context: ctx, Integrations: integrations}
	case "identify":
		msg = analytics.Identify{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Traits: c.Traits, Context: ctx, Integrations: integrations}
	case "page":
		msg = analytics.Page{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Name: c.Name, Properties: c.Properties, Context: ctx, Integrations: integrations}
	case "screen":
		msg = analytics.Screen{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Name: c.Name, Properties: c.Properties, Context: ctx, Integrations: integrations}
	case "group":
		msg = analytics.Group{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			GroupId: c.GroupID, Traits: c.Traits, Context: ctx, Integrations: integrations}
	case "alias":
		msg = analytics.Alias{MessageId: c.MessageID, UserId: c.UserID, PreviousId: c.PreviousID, Timestamp: ts,
			Context: ctx, Integrations: integrations}
	case "":
		return nil, errors.New("call has no type (track, identify, page, screen, group or alias)")
	default:
		return nil, fmt.Errorf("call type %q is not one of track, identify, page, screen, group, alias", c.Type)
	}
	if err := msg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s call: %w", c.Type, err)
	}
	if err := checkFieldsFor(c); err != nil {
		return nil, err
	}
	return msg, nil
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

// messageID reads the id of a message built by parseCall.
func messageID(m analytics.Message) string {
	switch v := m.(type) {
	case analytics.Track:
		return v.MessageId
	case analytics.Identify:
		return v.MessageId
	case analytics.Page:
		return v.MessageId
	case analytics.Screen:
		return v.MessageId
	case analytics.Group:
		return v.MessageId
	case analytics.Alias:
		return v.MessageId
	}
	return ""
}
