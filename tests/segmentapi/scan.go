package segmentapi

import (
	"encoding/json"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The request path checks bodies with json.Valid, the same acceptance as the
// encoding/json decode behind Accepted and the hook, then splits them with
// gjson, which reads valid JSON in place: each value's raw bytes as sent,
// without decoding calls into maps (~35 µs of CPU per call, taken from the
// pipelines the benchmark measures). gjson does not validate, hence
// json.Valid first. fastjson does not fit: its Parser accepts invalid JSON
// and gives no value's raw bytes (the per-call size limit and the kept calls
// need them), and its Validate has no nesting limit and misses a control
// character before an escape.

// Members of a call that validation reads.
const (
	fType = iota
	fUserID
	fAnonymousID
	fMessageID
	fEvent
	fName
	fGroupID
	fPreviousID
	fTimestamp
	fSentAt
	numFields
)

func fieldOf(key string) int {
	switch key {
	case "type":
		return fType
	case "userId":
		return fUserID
	case "anonymousId":
		return fAnonymousID
	case "messageId":
		return fMessageID
	case "event":
		return fEvent
	case "name":
		return fName
	case "groupId":
		return fGroupID
	case "previousId":
		return fPreviousID
	case "timestamp":
		return fTimestamp
	case "sentAt":
		return fSentAt
	}
	return -1
}

// scannedCall is one call as sent: its raw JSON and, when it is an object,
// the raw values (nil when absent) of the members validation reads. As with
// encoding/json, the last of duplicate members wins.
type scannedCall struct {
	raw    []byte
	object bool
	f      [numFields][]byte
}

// batchBody holds the raw top-level members of a /v1/batch body.
type batchBody struct {
	batch, context, integrations, messageID, sentAt []byte
}

// parse views a valid JSON body for gjson without copying it; the results
// alias body.
func parse(body []byte) gjson.Result {
	return gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
}

// rawOf is v's bytes within body, which v was parsed from.
func rawOf(body []byte, v gjson.Result) []byte {
	return body[v.Index : v.Index+len(v.Raw)]
}

// scanCall reads call v of body into c.
func scanCall(body []byte, v gjson.Result, c *scannedCall) {
	*c = scannedCall{raw: rawOf(body, v), object: v.IsObject()}
	if c.object {
		v.ForEach(func(k, m gjson.Result) bool {
			if f := fieldOf(k.Str); f >= 0 {
				c.f[f] = rawOf(body, m) // later duplicates overwrite
			}
			return true
		})
	}
}

// scanBatch validates a /v1/batch body that must be a JSON object, and
// appends the calls of its "batch" array (when it is one) to calls.
func scanBatch(body []byte, calls []scannedCall) (batchBody, []scannedCall, bool) {
	var top batchBody
	if !json.Valid(body) {
		return top, calls, false
	}
	root := parse(body)
	if !root.IsObject() {
		return top, calls, false
	}
	var batch gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str { // later duplicates overwrite
		case "batch":
			batch, top.batch = v, rawOf(body, v)
		case "context":
			top.context = rawOf(body, v)
		case "integrations":
			top.integrations = rawOf(body, v)
		case "messageId":
			top.messageID = rawOf(body, v)
		case "sentAt":
			top.sentAt = rawOf(body, v)
		}
		return true
	})
	if batch.IsArray() {
		batch.ForEach(func(_, v gjson.Result) bool {
			calls = append(calls, scannedCall{})
			scanCall(body, v, &calls[len(calls)-1])
			return true
		})
	}
	return top, calls, true
}

// scanSingle scans the body of a single-call path as its one call; the call
// is marked not an object unless the whole body is one valid JSON object.
func scanSingle(body []byte) scannedCall {
	var c scannedCall
	if json.Valid(body) {
		scanCall(body, parse(body), &c)
	}
	c.raw = body
	return c
}
