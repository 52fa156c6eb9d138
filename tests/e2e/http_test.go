package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// customHTTPBody turns fixture records into what Currents' Custom HTTP
// connector POSTs: {"events": [{event_type, id, time, properties, user}]}.
func customHTTPBody(t *testing.T, eventType string, records []map[string]any) []byte {
	t.Helper()
	var events []map[string]any
	for _, r := range records {
		user, props := map[string]any{}, map[string]any{}
		for k, v := range r {
			switch k {
			case "id", "time":
			case "user_id", "external_user_id", "device_id", "timezone":
				user[k] = v
			default:
				props[k] = v
			}
		}
		events = append(events, map[string]any{"event_type": eventType, "id": r["id"], "time": r["time"], "properties": props, "user": user})
	}
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCustomHTTPPipeline runs config/currents_http_to_segment.yaml: Braze
// gets a 2xx only once Segment accepted the events, and a non-2xx (so it
// retries) for a wrong token or while Segment is down.
func TestCustomHTTPPipeline(t *testing.T) {
	srv, err := segmentapi.Start(e2eWriteKey)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := freeAddr(t)
	cmd := exec.Command(binary, "-c", "config/currents_http_to_segment.yaml")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CURRENTS_HTTP_TOKEN=braze-token", "CURRENTS_HTTP_ADDRESS="+addr,
		"CURRENTS_HTTP_TIMEOUT=3s", "SEGMENT_WRITE_KEY="+e2eWriteKey, "SEGMENT_ENDPOINT="+srv.URL(),
		"DEAD_LETTER_PATH="+filepath.Join(t.TempDir(), "dead.jsonl"), "CONNECT_HTTP_ADDRESS=127.0.0.1:0")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitListening(t, addr)

	var buf bytes.Buffer
	records, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: "users.messages.email.Open", Records: 40, Seed: 61})
	if err != nil {
		t.Fatal(err)
	}
	var named []map[string]any
	for _, r := range records {
		if r["external_user_id"] != nil {
			named = append(named, r)
		}
	}
	post := func(token string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/currents", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v\n%s", err, logs.String())
		}
		res.Body.Close()
		return res.StatusCode
	}

	first := customHTTPBody(t, "users.messages.email.Open", named[:10])
	if code := post("braze-token", first); code != http.StatusOK {
		t.Fatalf("status %d for a good request\n%s", code, logs.String())
	}
	for _, r := range named[:10] {
		if srv.Count(r["id"].(string)) != 1 {
			t.Fatalf("answered 200 before Segment accepted event %s", r["id"])
		}
	}

	second := customHTTPBody(t, "users.messages.email.Open", named[10:20])
	if code := post("wrong-token", second); code/100 == 2 {
		t.Fatalf("status %d for a wrong token", code)
	}
	if srv.UniqueMessageIDs() != 10 {
		t.Fatalf("a request with a wrong token reached Segment")
	}

	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	if code := post("braze-token", second); code/100 == 2 {
		t.Fatalf("status %d while Segment is down: Braze would not retry", code)
	}
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	// Braze's retry of the same request.
	if code := post("braze-token", second); code != http.StatusOK {
		t.Fatalf("status %d for the retry after the outage", code)
	}
	for _, r := range named[:20] {
		if srv.Count(r["id"].(string)) < 1 {
			t.Fatalf("event %s lost", r["id"])
		}
	}
	if srv.UniqueMessageIDs() != 20 {
		t.Fatalf("%d events in Segment, want 20", srv.UniqueMessageIDs())
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond) // polling for a port, not timing a result
	}
	t.Fatalf("nothing listening on %s", addr)
}
