package segmentapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const writeKey = "wk_test_123"

// newClient returns a client with its own connection pool, so connection
// counts are not shared between tests.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends a Segment request (basic auth with user, JSON content type);
// mods may adjust it. It drains and closes the body so keep-alive works.
func post(c *http.Client, url, user string, body []byte, mods ...func(*http.Request)) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, "")
	}
	for _, m := range mods {
		m(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.body); err != nil {
			return a, err
		}
	}
	return a, nil
}

// mustPost is post that fails the test on a transport error.
func mustPost(t *testing.T, c *http.Client, url, user string, body []byte, mods ...func(*http.Request)) answer {
	t.Helper()
	a, err := post(c, url, user, body, mods...)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return a
}

// expect checks an answer's status and, for 400s, the error text and index
// (index -1: the body must carry no index).
func expect(t *testing.T, a answer, status int, errContains string, index int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d (body %v)", a.status, status, a.body)
	}
	if status == http.StatusOK {
		if a.body["success"] != true {
			t.Fatalf("200 body = %v, want success:true", a.body)
		}
		return
	}
	if msg, _ := a.body["error"].(string); !strings.Contains(msg, errContains) {
		t.Fatalf("error = %q, want it to contain %q", msg, errContains)
	}
	if status != http.StatusBadRequest {
		return
	}
	got, has := a.body["index"].(float64)
	switch {
	case index < 0 && has:
		t.Fatalf("index = %v, want none", got)
	case index >= 0 && (!has || int(got) != index):
		t.Fatalf("index = %v (present %v), want %d", a.body["index"], has, index)
	}
}

func track(id string) map[string]any {
	return map[string]any{"type": "track", "event": "Purchased", "userId": "u1", "messageId": id}
}

func batch(calls ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"batch": calls})
	if err != nil {
		panic(err)
	}
	return b
}

func tracks(ids ...string) []byte {
	calls := make([]map[string]any, len(ids))
	for i, id := range ids {
		calls[i] = track(id)
	}
	return batch(calls...)
}
