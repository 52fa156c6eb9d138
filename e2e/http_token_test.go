package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCustomHTTPTokenRotation runs the shipped Custom HTTP config with
// CURRENTS_HTTP_PREVIOUS_TOKEN: requests carrying the new token or the old
// one are delivered, another token gets 401, the old one is warned of, and
// neither token reaches the logs (debug level included).
func TestCustomHTTPTokenRotation(t *testing.T) {
	parallelCPU(t)
	const current, previous = "braze-token-2026", "braze-token-2025"
	p := startHTTPPipeline(t, current, "10s", "CURRENTS_HTTP_PREVIOUS_TOKEN="+previous)
	for i, c := range []struct {
		token string
		want  int
	}{{current, http.StatusOK}, {previous, http.StatusOK}, {"braze-token-2024", http.StatusUnauthorized}} {
		events := namedEvents(t, "users.messages.email.Send", 2, uint64(i+1))
		code, _ := p.post("Bearer "+c.token, bytes.NewReader(customHTTPBody(t, "users.messages.email.Send", events)), -1)
		if code != c.want {
			t.Fatalf("token %s: status %d, want %d\n%s", c.token, code, c.want, lastLines(p.proc.logs(), 30))
		}
		for _, r := range events {
			if delivered := p.srv.Count(r["id"].(string)) > 0; delivered != (c.want == http.StatusOK) {
				t.Fatalf("token %s: event %s delivered %v", c.token, r["id"], delivered)
			}
		}
	}
	p.proc.waitLines(1, 10*time.Second, "carries previous_token, not token")
	for _, token := range []string{current, previous} {
		if strings.Contains(p.proc.logs(), token) {
			t.Fatalf("a token is in the logs:\n%s", p.proc.logs())
		}
	}
}
