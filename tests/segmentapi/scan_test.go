package segmentapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var fieldNames = [numFields]string{"type", "userId", "anonymousId", "messageId", "event", "name", "groupId", "previousId", "timestamp", "sentAt"}

var scanSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `-0.5e-3`, `1E+9`, `true`, `false`, `null`, ` {"a" : [1, {"b":null}] } `,
	`01`, `1.`, `.5`, `+1`, `1e`, `-`, `tru`, `nul`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{"a":1}}`, `{} {}`, `{}x`,
	`"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00"`, `"\x"`, `"\u12"`, `"` + "\x01" + `"`, `"` + "\xff\xfe" + `"`, "\f{}",
	`{"type":"tr\u0061ck","us\u0065rId":"u","messageId":"\ud800","event":"E","event":""}`,
	`{"type":"track","userId":"u1","messageId":"01234567\"9abcdef","name":7,"groupId":{"x":[1]},"previousId":null}`,
	`{"batch":[{"type":"track"},1,"x",null],"context":{},"integrations":null,"messageId":"m"}`,
	`{"batch":[1],"batch":{"a":1}}`, `{"batch":{},"batch":[{"a":"b"}]}`, `{"b\u0061tch":[{}]}`,
	`{"batch":[{"type":"page","userId":"u","ty\u0070e":"track","userId":"\u00e9\ud800"}]}`, "{\"type\":\"\xff\"}",
	"{\"\":\"\x15\\b\"}", // fastjson.Validate accepts this
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

// FuzzScan checks the split against encoding/json, which decodes calls for
// Accepted and the hook: the same bodies are batch objects with the same
// members and calls, and a call's members decode the same (the last of
// duplicates wins in both).
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var top map[string]json.RawMessage
		top2, calls, ok := scanBatch(data, nil)
		if want := decodeStrict(data, &top) == nil && top != nil; ok != want || ok && !json.Valid(data) {
			t.Fatalf("batch object = %v, encoding/json says %v", ok, want)
		}
		if ok {
			for name, got := range map[string][]byte{"batch": top2.batch, "context": top2.context,
				"integrations": top2.integrations, "messageId": top2.messageID, "sentAt": top2.sentAt} {
				if want, has := top[name]; has != (got != nil) || !bytes.Equal(got, want) {
					t.Fatalf("%s = %q, want %q", name, got, want)
				}
			}
			var raws []json.RawMessage
			if len(top2.batch) > 0 && top2.batch[0] == '[' && json.Unmarshal(top2.batch, &raws) == nil {
				if len(raws) != len(calls) {
					t.Fatalf("%d calls, want %d", len(calls), len(raws))
				}
				for i := range raws {
					if !bytes.Equal(calls[i].raw, raws[i]) || calls[i].object != (raws[i][0] == '{') {
						t.Fatalf("call %d = %q, want %q", i, calls[i].raw, raws[i])
					}
					checkMembers(t, &calls[i])
				}
			}
		}

		c := scanSingle(bytes.TrimSpace(data))
		var m Call
		if want := decodeStrict(c.raw, &m) == nil && m != nil; c.object != want || c.object && !json.Valid(c.raw) {
			t.Fatalf("call object = %v, encoding/json says %v", c.object, want)
		}
		checkMembers(t, &c)
	})
}

// checkMembers checks that an object call's members are those a full decode
// of it gives.
func checkMembers(t *testing.T, c *scannedCall) {
	t.Helper()
	var m Call
	if !c.object || decodeStrict(c.raw, &m) != nil {
		return
	}
	for f, name := range fieldNames {
		want, has := m[name]
		if has != (c.f[f] != nil) || has && !reflect.DeepEqual(show(c.f[f]), want) {
			t.Fatalf("member %s = %q, want %v (present %v)", name, c.f[f], want, has)
		}
		if isString(c.f[f]) && string(unquote(c.f[f])) != want {
			t.Fatalf("member %s unquotes to %q, want %q", name, unquote(c.f[f]), want)
		}
	}
}

// BenchmarkScanBatch is the split and validation alone on BenchmarkStandInBatch's body.
func BenchmarkScanBatch(b *testing.B) {
	body := []byte(`{"batch":[` + strings.Repeat(benchCall+",", 99) + benchCall + `]}`)
	b.SetBytes(int64(len(body)))
	var calls []scannedCall
	for b.Loop() {
		var bad *badRequest
		if calls, bad = splitBatch(body, calls); bad != nil || checkCalls(calls, "", DefaultMaxCallBytes) != nil {
			b.Fatal(bad)
		}
	}
}

const benchCall = `{"type":"track","event":"Braze Email Delivered","userId":"user-000042","messageId":"000000000123-042",` +
	`"timestamp":"2026-11-01T10:00:00.000Z","properties":{"prop_00":"val 00 of 042","prop_01":"val 01 of 042",` +
	`"prop_02":"val 02 of 042","prop_03":"val 03 of 042","prop_04":"val 04 of 042","prop_05":"val 05 of 042",` +
	`"prop_06":"val 06 of 042","prop_07":"val 07 of 042","prop_08":"val 08 of 042","prop_09":"val 09 of 042",` +
	`"prop_10":"val 10 of 042","prop_11":"val 11 of 042","prop_12":"val 12 of 042","prop_13":"val 13 of 042",` +
	`"prop_14":"val 14 of 042"},"context":{"traits":{"email":"someone.42@example.com"},` +
	`"device":{"type":"ios","model":"iPhone15,2"}},"integrations":{"All":true}}`
