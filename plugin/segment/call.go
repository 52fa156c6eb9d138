package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/analytics-go/v3"
)

// wireCall is one Segment call as a message carries it: the fields of the
// Tracking API spec. Unknown fields are refused rather than dropped, so that
// nothing a mapping produced is silently lost.
type wireCall struct {
	Type         string         `json:"type"`
	MessageID    string         `json:"messageId"`
	UserID       string         `json:"userId"`
	AnonymousID  string         `json:"anonymousId"`
	Timestamp    string         `json:"timestamp"`
	Event        string         `json:"event"`
	Name         string         `json:"name"`
	GroupID      string         `json:"groupId"`
	PreviousID   string         `json:"previousId"`
	Properties   rawObject      `json:"properties"`
	Traits       rawObject      `json:"traits"`
	Context      rawObject      `json:"context"`
	Integrations map[string]any `json:"integrations"`
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
// analytics-go's own rules (identity, event, groupId, previousId).
func parseCall(body []byte) (analytics.Message, error) {
	var c wireCall
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not a Segment call: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a Segment call: more than one JSON value")
	}
	if c.MessageID == "" {
		c.MessageID = derivedMessageID(body)
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
		ctx = &analytics.Context{Extra: c.Context.values()}
	}
	integrations := analytics.Integrations(c.Integrations)

	var msg analytics.Message
	switch c.Type {
	case "track":
		msg = analytics.Track{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Event: c.Event, Properties: c.Properties.values(), Context: ctx, Integrations: integrations}
	case "identify":
		msg = analytics.Identify{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Traits: c.Traits.values(), Context: ctx, Integrations: integrations}
	case "page":
		msg = analytics.Page{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Name: c.Name, Properties: c.Properties.values(), Context: ctx, Integrations: integrations}
	case "screen":
		msg = analytics.Screen{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			Name: c.Name, Properties: c.Properties.values(), Context: ctx, Integrations: integrations}
	case "group":
		msg = analytics.Group{MessageId: c.MessageID, UserId: c.UserID, AnonymousId: c.AnonymousID, Timestamp: ts,
			GroupId: c.GroupID, Traits: c.Traits.values(), Context: ctx, Integrations: integrations}
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
	unused := map[string]bool{
		"event":       c.Event != "" && c.Type != "track",
		"name":        c.Name != "" && c.Type != "page" && c.Type != "screen",
		"groupId":     c.GroupID != "" && c.Type != "group",
		"previousId":  c.PreviousID != "" && c.Type != "alias",
		"properties":  c.Properties != nil && c.Type != "track" && c.Type != "page" && c.Type != "screen",
		"traits":      c.Traits != nil && c.Type != "identify" && c.Type != "group",
		"anonymousId": c.AnonymousID != "" && c.Type == "alias",
	}
	for _, f := range []string{"event", "name", "groupId", "previousId", "properties", "traits", "anonymousId"} {
		if unused[f] {
			return fmt.Errorf("%s calls have no %s field", c.Type, f)
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
