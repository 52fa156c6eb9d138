package segmentapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// callTypes are the Tracking API's call types; each also has a single-call
// path /v1/<type>.
var callTypes = map[string]bool{
	"track": true, "identify": true, "page": true,
	"screen": true, "group": true, "alias": true,
}

// maxMessageIDChars: Segment requires messageId to be under 100 characters.
const maxMessageIDChars = 100

// badRequest is a 400 answer; index is -1 when no single call is at fault.
type badRequest struct {
	msg   string
	index int
}

func requestErr(format string, args ...any) *badRequest {
	return &badRequest{msg: fmt.Sprintf(format, args...), index: -1}
}

func callErr(i int, format string, args ...any) *badRequest {
	return &badRequest{msg: fmt.Sprintf(format, args...), index: i}
}

// decodeStrict decodes exactly one JSON value, keeping numbers exact and
// refusing trailing data (Segment answers 400 to anything but clean JSON).
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// splitBatch parses a /v1/batch body into its raw calls, so each call's size
// can be measured exactly as sent.
func splitBatch(body []byte) ([]json.RawMessage, *badRequest) {
	var top map[string]json.RawMessage
	if err := decodeStrict(body, &top); err != nil || top == nil {
		return nil, requestErr("invalid JSON: body must be a JSON object: %v", err)
	}
	raw, ok := top["batch"]
	if !ok || !bytes.HasPrefix(raw, []byte("[")) {
		return nil, requestErr(`"batch" must be an array of calls`)
	}
	var calls []json.RawMessage
	if err := json.Unmarshal(raw, &calls); err != nil {
		return nil, requestErr(`invalid "batch": %v`, err)
	}
	for _, k := range []string{"context", "integrations"} {
		if v, ok := top[k]; ok && !bytes.HasPrefix(v, []byte("{")) && !bytes.Equal(v, []byte("null")) {
			return nil, requestErr("%q must be an object", k)
		}
	}
	if v, ok := top["messageId"]; ok {
		var id any
		if err := json.Unmarshal(v, &id); err != nil {
			return nil, requestErr("invalid batch messageId: %v", err)
		}
		if msg := checkMessageID(id); msg != "" {
			return nil, requestErr("batch %s", msg)
		}
	}
	return calls, nil
}

// parseCalls decodes and validates raw calls. impliedType is the type given
// by a single-call path ("" for /v1/batch); it is filled in when absent.
func parseCalls(raws []json.RawMessage, impliedType string, maxCallBytes int) ([]Call, *badRequest) {
	calls := make([]Call, 0, len(raws))
	for i, raw := range raws {
		if len(raw) > maxCallBytes {
			return nil, callErr(i, "call is %d bytes, over the %d byte limit", len(raw), maxCallBytes)
		}
		var c Call
		if err := decodeStrict(raw, &c); err != nil || c == nil {
			return nil, callErr(i, "call must be a JSON object")
		}
		if impliedType != "" {
			switch t, ok := c["type"]; {
			case !ok || t == nil:
				c["type"] = impliedType
			case t != impliedType:
				return nil, callErr(i, "type %v does not match path /v1/%s", t, impliedType)
			}
		}
		if msg := validateCall(c); msg != "" {
			return nil, callErr(i, "%s", msg)
		}
		calls = append(calls, c)
	}
	return calls, nil
}

// validateCall applies Segment's per-call rules; it returns "" when valid.
func validateCall(c Call) string {
	typ, _ := c["type"].(string)
	if !callTypes[typ] {
		return fmt.Sprintf("unknown or missing type %v", c["type"])
	}
	if !nonEmptyString(c, "userId") && !nonEmptyString(c, "anonymousId") {
		return "userId or anonymousId is required"
	}
	if msg := checkMessageID(c["messageId"]); msg != "" {
		return msg
	}
	switch typ {
	case "track":
		if !nonEmptyString(c, "event") {
			return "track call requires event"
		}
	case "page", "screen":
		if v := c["name"]; v != nil {
			if _, ok := v.(string); !ok {
				return typ + " name must be a string"
			}
		}
	case "group":
		if !nonEmptyString(c, "groupId") {
			return "group call requires groupId"
		}
	case "alias":
		if !nonEmptyString(c, "previousId") || !nonEmptyString(c, "userId") {
			return "alias call requires previousId and userId"
		}
	}
	return ""
}

// checkMessageID accepts an absent/null messageId or a string of fewer than
// 100 characters.
func checkMessageID(v any) string {
	if v == nil {
		return ""
	}
	id, ok := v.(string)
	if !ok {
		return "messageId must be a string"
	}
	if n := utf8.RuneCountInString(id); n >= maxMessageIDChars {
		return fmt.Sprintf("messageId is %d characters, must be under %d", n, maxMessageIDChars)
	}
	return ""
}

func nonEmptyString(c Call, key string) bool {
	s, ok := c[key].(string)
	return ok && s != ""
}
