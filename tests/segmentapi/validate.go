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
// path /v1/<type>. quotedType holds each as a raw JSON string.
var (
	callTypes = map[string]bool{
		"track": true, "identify": true, "page": true,
		"screen": true, "group": true, "alias": true,
	}
	quotedType = func() map[string][]byte {
		m := map[string][]byte{}
		for t := range callTypes {
			m[t] = []byte(`"` + t + `"`)
		}
		return m
	}()
)

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

// splitBatch validates a /v1/batch body and returns its calls (appended to
// calls, whose backing array it reuses), each as sent, so each call's size
// can be measured exactly.
func splitBatch(body []byte, calls []scannedCall) ([]scannedCall, *badRequest) {
	top, calls, ok := scanBatch(body, calls[:0])
	if !ok {
		// Only now pay for encoding/json, for its description of the fault.
		var m map[string]json.RawMessage
		return calls, requestErr("invalid JSON: body must be a JSON object: %v", decodeStrict(body, &m))
	}
	if top.batch == nil || top.batch[0] != '[' {
		return calls, requestErr(`"batch" must be an array of calls`)
	}
	for _, m := range [...]struct {
		name string
		v    []byte
	}{{"context", top.context}, {"integrations", top.integrations}} {
		if m.v != nil && m.v[0] != '{' && string(m.v) != "null" {
			return calls, requestErr("%q must be an object", m.name)
		}
	}
	if msg := checkMessageID(top.messageID); msg != "" {
		return calls, requestErr("batch %s", msg)
	}
	for i := range calls {
		if calls[i].f[fSentAt] == nil { // the batch's sentAt is its calls'
			calls[i].f[fSentAt] = top.sentAt
		}
	}
	return calls, nil
}

// checkCalls validates scanned calls in order. impliedType is the type given
// by a single-call path ("" for /v1/batch); it is filled in when absent.
func checkCalls(calls []scannedCall, impliedType string, maxCallBytes int) *badRequest {
	for i := range calls {
		c := &calls[i]
		if len(c.raw) > maxCallBytes {
			return callErr(i, "call is %d bytes, over the %d byte limit", len(c.raw), maxCallBytes)
		}
		if !c.object {
			return callErr(i, "call must be a JSON object")
		}
		if impliedType != "" {
			switch t := c.f[fType]; {
			case isNull(t):
				c.f[fType] = quotedType[impliedType]
			case !isString(t) || string(unquote(t)) != impliedType:
				return callErr(i, "type %v does not match path /v1/%s", show(t), impliedType)
			}
		}
		if msg := validateCall(c); msg != "" {
			return callErr(i, "%s", msg)
		}
	}
	return nil
}

// validateCall applies Segment's per-call rules; it returns "" when valid.
func validateCall(c *scannedCall) string {
	var typ []byte
	if isString(c.f[fType]) {
		typ = unquote(c.f[fType])
	}
	if !callTypes[string(typ)] {
		return fmt.Sprintf("unknown or missing type %v", show(c.f[fType]))
	}
	if !nonEmpty(c.f[fUserID]) && !nonEmpty(c.f[fAnonymousID]) {
		return "userId or anonymousId is required"
	}
	if msg := checkMessageID(c.f[fMessageID]); msg != "" {
		return msg
	}
	switch string(typ) {
	case "track":
		if !nonEmpty(c.f[fEvent]) {
			return "track call requires event"
		}
	case "page", "screen":
		if v := c.f[fName]; !isNull(v) && !isString(v) {
			return string(typ) + " name must be a string"
		}
	case "group":
		if !nonEmpty(c.f[fGroupID]) {
			return "group call requires groupId"
		}
	case "alias":
		if !nonEmpty(c.f[fPreviousID]) || !nonEmpty(c.f[fUserID]) {
			return "alias call requires previousId and userId"
		}
	}
	return ""
}

// checkMessageID accepts an absent/null messageId or a string of fewer than
// 100 characters.
func checkMessageID(raw []byte) string {
	if isNull(raw) {
		return ""
	}
	if !isString(raw) {
		return "messageId must be a string"
	}
	if n := utf8.RuneCount(unquote(raw)); n >= maxMessageIDChars {
		return fmt.Sprintf("messageId is %d characters, must be under %d", n, maxMessageIDChars)
	}
	return ""
}

// messageID is the call's messageId for dedup counting; "" takes no part.
func (c *scannedCall) messageID() []byte {
	if !isString(c.f[fMessageID]) {
		return nil
	}
	return unquote(c.f[fMessageID])
}

// decodeCall decodes a validated call for callers of Accepted and the hook.
func decodeCall(raw []byte, impliedType string) Call {
	var c Call
	if err := decodeStrict(raw, &c); err != nil {
		panic("segmentapi: a validated call does not decode: " + err.Error())
	}
	if impliedType != "" && c["type"] == nil {
		c["type"] = impliedType
	}
	return c
}

// unquote decodes a raw JSON string as encoding/json does, without copying
// unless it holds escapes or invalid UTF-8.
func unquote(raw []byte) []byte {
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return in
	}
	var str string
	_ = json.Unmarshal(raw, &str)
	return []byte(str)
}

// isString reports whether raw is a JSON string; nonEmpty, a non-empty one.
func isString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }
func nonEmpty(raw []byte) bool { return isString(raw) && len(raw) > 2 }

// isNull reports whether a member is absent or null, as a map decode sees it.
func isNull(raw []byte) bool { return raw == nil || string(raw) == "null" }

// show decodes a raw value for an error message, as the contract's messages
// print what was sent.
func show(raw []byte) any {
	var v any
	if raw != nil {
		_ = decodeStrict(raw, &v)
	}
	return v
}
