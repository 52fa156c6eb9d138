package segmentapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func TestBatchHappyPath(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	body := []byte(`{"batch":[
		{"type":"track","event":"Purchased","userId":"u1","messageId":"m1","properties":{"n":12345678901234567890}},
		{"type":"identify","anonymousId":"a1","messageId":"m2","traits":{"plan":"pro"}},
		{"type":"page","userId":"u1","name":"Home","messageId":"m3"},
		{"type":"screen","userId":"u1","messageId":"m4"},
		{"type":"group","userId":"u1","groupId":"g1","messageId":"m5"},
		{"type":"alias","previousId":"a1","userId":"u1","messageId":"m6"}
	],"context":{"library":{"name":"test"}},"integrations":{"All":true},"messageId":"b1","sentAt":"2026-11-01T10:00:00Z"}`)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, body), http.StatusOK, "", -1)

	got := s.Accepted()
	wantTypes := []string{"track", "identify", "page", "screen", "group", "alias"}
	if len(got) != len(wantTypes) {
		t.Fatalf("accepted %d calls, want %d", len(got), len(wantTypes))
	}
	for i, typ := range wantTypes {
		if got[i]["type"] != typ {
			t.Errorf("call %d type = %v, want %s (arrival order)", i, got[i]["type"], typ)
		}
	}
	// Numbers are kept exactly as sent.
	props, _ := json.Marshal(got[0]["properties"])
	if string(props) != `{"n":12345678901234567890}` {
		t.Errorf("properties = %s, want the big number intact", props)
	}
	st := s.Stats()
	if st.Requests != 1 || st.Accepted != 6 || st.MaxCallsInRequest != 6 || st.MaxRequestBytes != len(body) || st.BodyBytes != int64(len(body)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestSingleCallPaths(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	calls := map[string]string{
		"track":    `{"event":"Opened","userId":"u1","messageId":"s-track"}`,
		"identify": `{"userId":"u1","messageId":"s-identify"}`,
		"page":     `{"anonymousId":"a1","name":"Home","messageId":"s-page"}`,
		"screen":   `{"userId":"u1","messageId":"s-screen"}`,
		"group":    `{"userId":"u1","groupId":"g1","messageId":"s-group"}`,
		"alias":    `{"type":"alias","previousId":"a1","userId":"u1","messageId":"s-alias"}`,
	}
	for typ, body := range calls {
		expect(t, mustPost(t, c, s.URL()+"/v1/"+typ, writeKey, []byte(body)), http.StatusOK, "", -1)
	}
	for _, call := range s.Accepted() {
		if want := call["messageId"].(string)[2:]; call["type"] != want {
			t.Errorf("call %v: type = %v, want %s implied by the path", call["messageId"], call["type"], want)
		}
	}
	if s.Stats().Accepted != len(calls) {
		t.Fatalf("accepted = %d, want %d", s.Stats().Accepted, len(calls))
	}

	// The path's type must not be contradicted, and its rules still apply.
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, []byte(`{"type":"page","userId":"u1"}`)), 400, "does not match", 0)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, []byte(`{"userId":"u1"}`)), 400, "requires event", 0)
	expect(t, mustPost(t, c, s.URL()+"/v1/nope", writeKey, []byte(`{}`)), 404, "unknown path", -1)
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1/batch", nil)
	req.SetBasicAuth(writeKey, "")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET status = %d, want 405", resp.StatusCode)
	}
	if st := s.Stats(); st.BadRoute != 2 || st.Rejected400 != 2 || st.Accepted != len(calls) {
		t.Fatalf("stats = %+v", st)
	}
}

// /v1/import is an alias of /v1/batch (Segment's maintainers, in
// segmentio/analytics-php#96; analytics-ruby and analytics-php post to it).
func TestImportIsBatch(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	expect(t, mustPost(t, newClient(t), s.URL()+"/v1/import", writeKey, tracks("i1", "i2")), http.StatusOK, "", -1)
	if s.Count("i1") != 1 || s.Count("i2") != 1 {
		t.Fatalf("accepted %v", s.Accepted())
	}
}

func TestGzipBody(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	plain := tracks("g1", "g2", "g3")
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(plain)
	zw.Close()
	gz := func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }

	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, zbuf.Bytes(), gz), http.StatusOK, "", -1)
	st := s.Stats()
	if st.Accepted != 3 || st.BodyBytes != int64(zbuf.Len()) || st.MaxRequestBytes != len(plain) {
		t.Fatalf("stats = %+v; want 3 accepted, wire bytes %d, decoded %d", st, zbuf.Len(), len(plain))
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, plain, gz), 400, "invalid gzip", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, plain, func(r *http.Request) {
		r.Header.Set("Content-Encoding", "br")
	}), 400, "Content-Encoding", -1)
}

func TestAuth(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	body := tracks("a1", "a2")

	a := mustPost(t, c, url, "", body)
	expect(t, a, http.StatusUnauthorized, "Authorization", -1)
	if a.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+writeKey) }
	expect(t, mustPost(t, c, url, "", body, bearer), http.StatusUnauthorized, "", -1)
	garbled := func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!notbase64") }
	expect(t, mustPost(t, c, url, "", body, garbled), http.StatusUnauthorized, "", -1)
	emptyUser := func(r *http.Request) { r.SetBasicAuth("", "") }
	expect(t, mustPost(t, c, url, "", body, emptyUser), http.StatusUnauthorized, "", -1)

	// Unknown key: Segment answers 200 but the calls go nowhere.
	expect(t, mustPost(t, c, url, "wk_other", body), http.StatusOK, "", -1)
	st := s.Stats()
	if st.Unauthorized != 4 || st.UnknownKeyCalls != 2 || st.Accepted != 0 || len(s.Accepted()) != 0 {
		t.Fatalf("stats = %+v, accepted %v", st, s.Accepted())
	}
	expect(t, mustPost(t, c, url, writeKey, body), http.StatusOK, "", -1)
	if n := len(s.Accepted()); n != 2 {
		t.Fatalf("accepted %d, want 2 with the right key", n)
	}
}

// Segment's writeKey authentication: with no Basic auth, the key is the
// body's writeKey, in a batch or a single call (HTTP API docs, Headers).
func TestWriteKeyInBody(t *testing.T) {
	s := segmentapi.StartT(t, writeKey, segmentapi.WithWriteKeys("wk_b"))
	c := newClient(t)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", "", []byte(`{"batch":[{"type":"track","event":"E","userId":"u","messageId":"w1"}],"writeKey":"`+writeKey+`"}`)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", "", []byte(`{"event":"E","userId":"u","messageId":"w2","writeKey":"wk_b"}`)), http.StatusOK, "", -1)
	// Basic auth wins over the body's key; a body key of the wrong type is none.
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, []byte(`{"batch":[{"type":"track","event":"E","userId":"u","messageId":"w3"}],"writeKey":"wk_b"}`)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", "", []byte(`{"batch":[],"writeKey":7}`)), http.StatusUnauthorized, "writeKey", -1)
	if n := len(s.AcceptedUnder(writeKey)); n != 2 || len(s.AcceptedUnder("wk_b")) != 1 || s.Count("w2") != 1 {
		t.Fatalf("accepted %d under the first key, %d under wk_b", n, len(s.AcceptedUnder("wk_b")))
	}
}

// Several sources: each call is recorded under the key it came with; other
// keys still get 200 and go nowhere.
func TestSeveralWriteKeys(t *testing.T) {
	s := segmentapi.StartT(t, writeKey, segmentapi.WithWriteKeys("wk_b"))
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	expect(t, mustPost(t, c, url, writeKey, tracks("k1", "k2")), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, url, "wk_b", tracks("k3")), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, url, "wk_other", tracks("k4")), http.StatusOK, "", -1)
	ids := func(key string) (out []string) {
		for _, call := range s.AcceptedUnder(key) {
			out = append(out, call["messageId"].(string))
		}
		return out
	}
	if a, b, other := ids(writeKey), ids("wk_b"), ids("wk_other"); len(a) != 2 || len(b) != 1 || b[0] != "k3" || len(other) != 0 {
		t.Fatalf("under the first key %v, the second %v, an unknown one %v", a, b, other)
	}
	if st := s.Stats(); st.Accepted != 3 || st.UnknownKeyCalls != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestContentTypeRequired(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	noCT := func(r *http.Request) { r.Header.Del("Content-Type") }
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("c1"), noCT), 400, "Content-Type", -1)
	withCharset := func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=utf-8") }
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("c1"), withCharset), http.StatusOK, "", -1)
}

func TestDedupCounters(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	expect(t, mustPost(t, c, url, writeKey, tracks("m1", "m2", "m1")), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, url, writeKey, tracks("m2", "m3")), http.StatusOK, "", -1)
	noID := map[string]any{"type": "identify", "userId": "u1"}
	expect(t, mustPost(t, c, url, writeKey, batch(noID)), http.StatusOK, "", -1)

	if got := len(s.Accepted()); got != 6 {
		t.Fatalf("accepted %d, want 6 (duplicates included)", got)
	}
	for id, want := range map[string]int{"m1": 2, "m2": 2, "m3": 1, "absent": 0} {
		if got := s.Count(id); got != want {
			t.Errorf("Count(%s) = %d, want %d", id, got, want)
		}
	}
	if s.UniqueMessageIDs() != 3 || s.Duplicates() != 2 {
		t.Fatalf("unique = %d, duplicates = %d; want 3, 2", s.UniqueMessageIDs(), s.Duplicates())
	}
}

func TestResetKeepsFaults(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	expect(t, mustPost(t, c, url, writeKey, tracks("r1")), http.StatusOK, "", -1)
	s.FailNext(1, http.StatusBadGateway)
	s.Reset()
	if st := s.Stats(); st.Requests != 0 || st.Accepted != 0 || st.ConnectionsOpened != 0 || len(s.Accepted()) != 0 || s.Count("r1") != 0 {
		t.Fatalf("after Reset: stats %+v, accepted %v", st, s.Accepted())
	}
	expect(t, mustPost(t, c, url, writeKey, tracks("r1")), http.StatusBadGateway, "injected", -1)
	expect(t, mustPost(t, c, url, writeKey, tracks("r1")), http.StatusOK, "", -1)
	if s.Count("r1") != 1 || s.Duplicates() != 0 {
		t.Fatalf("count %d duplicates %d after Reset", s.Count("r1"), s.Duplicates())
	}
}
