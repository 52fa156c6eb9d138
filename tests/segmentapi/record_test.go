package segmentapi_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func TestRecordIDsOnly(t *testing.T) {
	s := segmentapi.StartT(t, writeKey, segmentapi.WithRecordIDsOnly(), segmentapi.WithControlAPI())
	c := newClient(t)
	var mu sync.Mutex
	var hooked []segmentapi.Call
	s.OnRequest(func(_ *http.Request, calls []segmentapi.Call) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, calls...)
	})
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("m1", "m2", "m1")), http.StatusOK, "", -1)
	noID := map[string]any{"type": "identify", "userId": "u1"}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, batch(noID)), http.StatusOK, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, []byte(`{"userId":"u1","messageId":"m3"}`)), 400, "requires event", 0)

	if s.Count("m1") != 2 || s.Count("m2") != 1 || s.UniqueMessageIDs() != 2 || s.Duplicates() != 1 {
		t.Fatalf("counts m1=%d m2=%d, unique %d, duplicates %d", s.Count("m1"), s.Count("m2"), s.UniqueMessageIDs(), s.Duplicates())
	}
	if st := s.Stats(); st.Accepted != 4 || st.Rejected400 != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The hook still sees the calls; only keeping them is skipped.
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 4 || hooked[2]["messageId"] != "m1" || hooked[3]["type"] != "identify" {
		t.Fatalf("hook saw %v", hooked)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Accepted did not panic on a server that keeps no calls")
			}
		}()
		s.Accepted()
	}()
	var e map[string]any
	if code := control(t, c, "GET", s.URL()+"/_control/accepted", "", &e); code != http.StatusConflict || e["error"] == nil {
		t.Fatalf("control accepted: %d %v, want 409 with an error", code, e)
	}
}

// Accepted decodes kept calls on demand; calls accepted after one Accepted
// call must still follow in order.
func TestAcceptedBetweenRequests(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("a1", "a2")), http.StatusOK, "", -1)
	if got := s.Accepted(); len(got) != 2 || got[1]["messageId"] != "a2" {
		t.Fatalf("accepted %v", got)
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/page", writeKey, []byte(" {\"userId\":\"u1\",\"messageId\":\"a3\",\"type\":null}\n")), http.StatusOK, "", -1)
	got := s.Accepted()
	if len(got) != 3 || got[0]["messageId"] != "a1" || got[2]["messageId"] != "a3" || got[2]["type"] != "page" {
		t.Fatalf("accepted %v", got)
	}
	s.Reset()
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("a4")), http.StatusOK, "", -1)
	if got := s.Accepted(); len(got) != 1 || got[0]["messageId"] != "a4" {
		t.Fatalf("after Reset: accepted %v", got)
	}
}
