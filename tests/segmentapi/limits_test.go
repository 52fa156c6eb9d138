package segmentapi_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func TestBadJSON(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	for _, body := range []string{
		`{`, `not json`, `[]`, `null`, `{"batch":{}}`, `{"batch":null}`, `{}`,
		`{"batch":[]} {"batch":[]}`, `{"batch":[],"context":"x"}`,
	} {
		expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(body)), 400, "", -1)
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(`{"batch":[1]}`)), 400, "JSON object", 0)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, []byte(`{"event":`)), 400, "JSON object", 0)
	if st := s.Stats(); st.Rejected400 != 11 || st.Accepted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// paddedCall is a track call whose JSON is exactly size bytes.
func paddedCall(id string, size int) string {
	base := fmt.Sprintf(`{"type":"track","event":"E","userId":"u1","messageId":%q,"properties":{"pad":""}}`, id)
	return strings.Replace(base, `"pad":""`, `"pad":"`+strings.Repeat("x", size-len(base))+`"`, 1)
}

func TestCallSizeLimit(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	exact := paddedCall("big-ok", segmentapi.DefaultMaxCallBytes)
	over := paddedCall("big-over", segmentapi.DefaultMaxCallBytes+1)
	if len(exact) != 32768 || len(over) != 32769 {
		t.Fatalf("padding is off: %d, %d", len(exact), len(over))
	}
	small := paddedCall("small", 100)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(`{"batch":[`+exact+`]}`)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(`{"batch":[`+small+`,`+over+`]}`)), 400, "32768 byte limit", 1)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, []byte(over)), 400, "byte limit", 0)
	if s.Count("big-ok") != 1 || s.Count("small") != 0 || len(s.Accepted()) != 1 {
		t.Fatalf("accepted %d calls; the rejected request must record nothing", len(s.Accepted()))
	}
}

// batchOfSize is a /v1/batch body of exactly size bytes made of calls well
// under the per-call limit.
func batchOfSize(size int) []byte {
	var calls []string
	for i := 0; i < (size-1000)/20000; i++ { // leaves room for the envelope and the last call
		calls = append(calls, paddedCall(fmt.Sprintf("bb-%d", i), 20000))
	}
	last := `{"type":"track","event":"E","userId":"u1","properties":{"pad":""}}`
	body := `{"batch":[` + strings.Join(append(calls, last), ",") + `]}`
	return []byte(strings.Replace(body, `"pad":""`, `"pad":"`+strings.Repeat("y", size-len(body))+`"`, 1))
}

func TestBatchSizeLimit(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	exact, over := batchOfSize(500_000), batchOfSize(500_001)
	if len(exact) != 500_000 || len(over) != 500_001 {
		t.Fatalf("sizes %d, %d", len(exact), len(over))
	}
	expect(t, mustPost(t, c, url, writeKey, exact), http.StatusOK, "", -1)
	accepted := len(s.Accepted())
	expect(t, mustPost(t, c, url, writeKey, over), 400, "500000 byte limit", -1)

	// The limit applies to the decoded body, whatever the wire size.
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(over)
	zw.Close()
	gz := func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }
	expect(t, mustPost(t, c, url, writeKey, zbuf.Bytes(), gz), 400, "byte limit", -1)
	if len(s.Accepted()) != accepted || s.Stats().MaxRequestBytes != 500_001 {
		t.Fatalf("accepted %d (want %d), stats %+v", len(s.Accepted()), accepted, s.Stats())
	}

	small := segmentapi.StartT(t, writeKey, segmentapi.WithMaxBatchBytes(1000), segmentapi.WithMaxCallBytes(50))
	expect(t, mustPost(t, c, small.URL()+"/v1/batch", writeKey, batchOfSize(1001)), 400, "1000 byte limit", -1)
	expect(t, mustPost(t, c, small.URL()+"/v1/batch", writeKey, tracks("x")), 400, "50 byte limit", 0)
}

func TestOverCallLimitDroppedSilently(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	ids := make([]string, 2501)
	for i := range ids {
		ids[i] = fmt.Sprint("d", i)
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks(ids...)), http.StatusOK, "", -1)
	st := s.Stats()
	if st.SilentlyDropped != 2501 || st.Accepted != 0 || len(s.Accepted()) != 0 || st.MaxCallsInRequest != 2501 {
		t.Fatalf("2,501 calls: stats %+v", st)
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks(ids[:2500]...)), http.StatusOK, "", -1)
	if st := s.Stats(); st.Accepted != 2500 || st.SilentlyDropped != 2501 || s.UniqueMessageIDs() != 2500 {
		t.Fatalf("2,500 calls: stats %+v", st)
	}

	few := segmentapi.StartT(t, writeKey, segmentapi.WithMaxCalls(2))
	expect(t, mustPost(t, c, few.URL()+"/v1/batch", writeKey, tracks("a", "b", "c")), http.StatusOK, "", -1)
	if st := few.Stats(); st.SilentlyDropped != 3 || st.Accepted != 0 {
		t.Fatalf("WithMaxCalls(2): stats %+v", st)
	}
}

func TestInvalidCalls(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	ok := `{"type":"track","event":"E","userId":"u1"}`
	for _, tc := range []struct {
		bad, want string
	}{
		{`{"type":"track","event":"E"}`, "userId or anonymousId"},
		{`{"type":"track","event":"E","userId":""}`, "userId or anonymousId"},
		{`{"type":"identify","userId":42}`, "userId or anonymousId"},
		{`{"type":"track","userId":"u1"}`, "requires event"},
		{`{"type":"group","userId":"u1"}`, "requires groupId"},
		{`{"type":"alias","userId":"u1"}`, "requires previousId"},
		{`{"type":"alias","anonymousId":"a1","previousId":"p"}`, "requires previousId and userId"},
		{`{"type":"page","userId":"u1","name":7}`, "name must be a string"},
		{`{"type":"purchase","userId":"u1"}`, "unknown or missing type"},
		{`{"userId":"u1"}`, "unknown or missing type"},
		{`{"type":"track","event":"E","userId":"u1","messageId":7}`, "messageId must be a string"},
		{`{"type":"track","event":"E","userId":"u1","messageId":"` + strings.Repeat("m", 100) + `"}`, "under 100"},
	} {
		body := `{"batch":[` + ok + `,` + ok + `,` + tc.bad + `]}`
		expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(body)), 400, tc.want, 2)
	}
	if st := s.Stats(); st.Accepted != 0 || st.Rejected400 != 12 {
		t.Fatalf("stats %+v: an invalid call must reject its whole request", st)
	}
	// Under 100 characters (not bytes) is fine; page/screen names are optional.
	valid := `{"batch":[{"type":"track","event":"E","userId":"u1","messageId":"` + strings.Repeat("é", 99) + `"},` +
		`{"type":"screen","anonymousId":"a1"},{"type":"page","userId":"u1","name":null}]}`
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(valid)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(`{"batch":[],"messageId":"`+strings.Repeat("b", 100)+`"}`)), 400, "under 100", -1)
}
