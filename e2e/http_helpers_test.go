package e2e

// The Custom HTTP pipeline under test, and Currents-shaped requests.

import (
	"bytes"
	"io"
	"net"
	"net/http"
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
	body, err := fixtures.CustomHTTPBody(eventType, records)
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

// httpPipeline is config/currents_http_to_segment.yaml running against the
// Segment stand-in.
type httpPipeline struct {
	t           *testing.T
	proc        *connectProc
	srv         *segmentapi.Server
	addr        string // where Braze POSTs
	metrics     string // Connect's own HTTP server
	deadLetters string
}

// startHTTPPipeline starts the pipeline with a shorter grace than Connect's
// 20s default, for the tests that stop it with calls in flight: how long
// the grace is is not tested.
func startHTTPPipeline(t *testing.T, token, timeout string, extraEnv ...string) *httpPipeline {
	t.Helper()
	return startHTTPPipelineArgs(t, token, timeout, []string{"--set", "shutdown_timeout=3s"}, extraEnv...)
}

// startHTTPPipelineArgs starts the pipeline with args after the config's.
func startHTTPPipelineArgs(t *testing.T, token, timeout string, args []string, extraEnv ...string) *httpPipeline {
	t.Helper()
	srv := segmentapi.StartT(t, e2eWriteKey)
	p := &httpPipeline{t: t, srv: srv, addr: freeAddr(t), metrics: freeAddr(t),
		deadLetters: filepath.Join(t.TempDir(), "dead.jsonl")}
	env := append([]string{"CURRENTS_HTTP_TOKEN=" + token, "CURRENTS_HTTP_ADDRESS=" + p.addr,
		"CURRENTS_HTTP_TIMEOUT=" + timeout, "SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=" + srv.URL(),
		"DEAD_LETTER_PATH=" + p.deadLetters, "CONNECT_HTTP_ADDRESS=" + p.metrics}, extraEnv...)
	events := newNotifier()
	srv.OnRequest(func(*http.Request, []segmentapi.Call) { events.notify() })
	// Debug logs: the token must not appear even there.
	p.proc = startConnect(t, repoRoot, env, events, append([]string{"--log.level", "debug", "-c", httpConfig}, args...)...)
	p.proc.waitLines(1, time.Minute, "Receiving Braze Currents events at")
	return p
}

// post sends body with the Authorization header auth (none when empty) and
// returns the status and the answer's headers.
func (p *httpPipeline) post(auth string, body io.Reader, size int64, tweak ...func(*http.Request)) (int, http.Header) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/currents", body)
	if err != nil {
		p.t.Fatal(err)
	}
	req.ContentLength = size
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, f := range tweak {
		f(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("POST: %v\n%s", err, lastLines(p.proc.logs(), 30))
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

func (p *httpPipeline) postBytes(auth string, body []byte) int {
	p.t.Helper()
	code, _ := p.post(auth, bytes.NewReader(body), int64(len(body)))
	return code
}

// metric sums the samples of a series on the pipeline's Prometheus endpoint
// whose labels include matchers (label="value"; all of them when empty).
func (p *httpPipeline) metric(name, matchers string) float64 {
	p.t.Helper()
	return scrapeMetrics(p.t, p.metrics).sum(name, matchers)
}

// namedEvents are fixture events of users with an external id: the ones
// Braze's connector (and our default mapping) send.
func namedEvents(t *testing.T, eventType string, n int, seed uint64) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	records, err := fixtures.WriteFile(&buf, fixtures.FileSpec{EventType: eventType, Records: 4 * n, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var named []map[string]any
	for _, r := range records {
		if r["external_user_id"] != nil && len(named) < n {
			named = append(named, r)
		}
	}
	if len(named) < n {
		t.Fatalf("only %d named events in the fixture", len(named))
	}
	return named
}

func (p *httpPipeline) checkDelivered(events []map[string]any) {
	p.t.Helper()
	for _, r := range events {
		if p.srv.Count(r["id"].(string)) < 1 {
			p.t.Fatalf("event %s not in Segment\n%s", r["id"], lastLines(p.proc.logs(), 30))
		}
	}
}

// dashboardHTTPScrape runs the Custom HTTP pipeline, with a previous token,
// through a request delivered, one carrying the previous token and a
// malformed event, and one with a wrong token, and returns its /metrics.
func dashboardHTTPScrape(t *testing.T) scrape {
	t.Helper()
	const token, previous = "braze-token-new", "braze-token-old"
	p := startHTTPPipeline(t, token, "10s", "CURRENTS_HTTP_PREVIOUS_TOKEN="+previous)
	events := namedEvents(t, "users.messages.email.Send", 2, 31)
	for _, c := range []struct {
		token string
		body  []byte
		want  int
	}{
		{token, customHTTPBody(t, "users.messages.email.Send", events), http.StatusOK},
		{previous, []byte(`{"events": [{"id": "m-1", "time": 1764590400}]}`), http.StatusOK}, // no event_type: dead-lettered
		{"braze-token-wrong", customHTTPBody(t, "users.messages.email.Send", events), http.StatusUnauthorized},
	} {
		if code := p.postBytes("Bearer "+c.token, c.body); code != c.want {
			t.Fatalf("status %d, want %d\n%s", code, c.want, lastLines(p.proc.logs(), 30))
		}
	}
	p.checkDelivered(events)
	var s scrape
	waitUntil(t, "the requests counted in /metrics", func() bool {
		var err error
		s, err = tryScrape(p.metrics)
		return err == nil && s.sum("braze_currents_http_requests", "") == 3
	})
	for _, c := range []struct {
		name, matchers string
		want           float64
	}{
		{"braze_currents_http_requests", `status="200"`, 2},
		{"braze_currents_http_requests", `status="401"`, 1},
		{"braze_currents_http_events_received", "", 3},
		{"braze_currents_http_events_malformed", "", 1},
		{"braze_currents_http_previous_token_requests", "", 1},
	} {
		if got := s.sum(c.name, c.matchers); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.matchers, got, c.want)
		}
	}
	return s
}
