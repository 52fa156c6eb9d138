package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
)

const httpConfig = "config/currents_http_to_segment.yaml"

// TestCustomHTTPDelivers: Braze gets 200 only once Segment accepted every
// event of the request.
func TestCustomHTTPDelivers(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	events := namedEvents(t, "users.messages.email.Open", 30, 61)
	if code := p.postBytes("Bearer braze-token", customHTTPBody(t, "users.messages.email.Open", events)); code != http.StatusOK {
		t.Fatalf("status %d for a good request\n%s", code, lastLines(p.proc.logs(), 30))
	}
	p.checkDelivered(events) // already there when 200 came back
	if p.srv.UniqueMessageIDs() != 30 || len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("%d calls in Segment, %d dead letters; want 30 and 0", p.srv.UniqueMessageIDs(), len(deadletter.Read(t, p.deadLetters, false)))
	}
	// An event the mapping cannot map (no id) is dead-lettered, and
	// the request still gets its 200: the event reached an error path.
	orphan := map[string]any{"event_type": "users.messages.email.Open", "time": 1764590400,
		"properties": map[string]any{"email_address": "x@example.com"}, "user": map[string]any{"external_user_id": "u-1"}}
	body, _ := json.Marshal(map[string]any{"events": []any{orphan}})
	if code := p.postBytes("Bearer braze-token", body); code != http.StatusOK {
		t.Fatalf("status %d for an unmappable event", code)
	}
	if len(deadletter.Read(t, p.deadLetters, false)) != 1 {
		t.Fatalf("%d dead letters, want the unmappable event", len(deadletter.Read(t, p.deadLetters, false)))
	}
	if got := p.metric("braze_currents_http_events_received", ""); got != 31 {
		t.Fatalf("braze_currents_http_events_received = %v, want 31", got)
	}
	if got := p.metric("braze_currents_http_requests", `status="200"`); got != 2 {
		t.Fatalf(`braze_currents_http_requests{status="200"} = %v, want 2`, got)
	}
}

// TestCustomHTTPRefusesUnauthorised: only the Authorization header carries
// the token; everything else gets 401 before the body is read, and nothing
// is sent or dead-lettered. The configured token is the injection that
// turned authentication off in the Bloblang version.
func TestCustomHTTPRefusesUnauthorised(t *testing.T) {
	parallelCPU(t)
	const token = `x" && false && "`
	p := startHTTPPipeline(t, token, "60s")
	// Before any request the 401 series is there at 0, so that increase()
	// sees the first 401 (a series born at 1 has no rise).
	var s scrape
	waitUntil(t, "/metrics", func() bool {
		var err error
		s, err = tryScrape(p.metrics)
		return err == nil
	})
	if why := s.missing(promSelector{metric: "braze_currents_http_requests", matchers: `status="401"`}); why != "" {
		t.Fatalf("before any request: %s", why)
	}
	events := namedEvents(t, "users.messages.email.Send", 5, 7)
	body := customHTTPBody(t, "users.messages.email.Send", events)
	withQuery := func(r *http.Request) { r.URL.RawQuery = url.Values{"token": {token}, "access_token": {token}}.Encode() }
	withCookie := func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "Authorization", Value: "Bearer " + token}) }
	for _, c := range []struct {
		name  string
		auth  string
		tweak []func(*http.Request)
	}{
		{"no token", "", nil},
		{"wrong token", "Bearer braze-token", nil},
		{"the injection's other half", `Bearer x`, nil},
		{"token without scheme", token, nil},
		{"Basic scheme", "Basic " + token, nil},
		{"token in the query", "", []func(*http.Request){withQuery}},
		{"token in a cookie", "", []func(*http.Request){withCookie}},
	} {
		code, h := p.post(c.auth, bytes.NewReader(body), int64(len(body)), c.tweak...)
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: status %d (WWW-Authenticate %q), want 401", c.name, code, h.Get("WWW-Authenticate"))
		}
	}
	// 50 MB of X without a token: refused before the body is read.
	code, _ := p.post("", io.LimitReader(repeatReader('X'), 50<<20), 50<<20)
	if code != http.StatusUnauthorized {
		t.Fatalf("50 MB without a token: status %d, want 401", code)
	}
	if p.srv.UniqueMessageIDs() != 0 || len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("unauthorised requests reached Segment (%d) or the dead letter file (%d)", p.srv.UniqueMessageIDs(), len(deadletter.Read(t, p.deadLetters, false)))
	}
	// The scheme is case-insensitive.
	if code := p.postBytes("bearer "+token, body); code != http.StatusOK {
		t.Fatalf("lower-case bearer with the right token: status %d", code)
	}
	p.checkDelivered(events)
	if got := p.metric("braze_currents_http_requests", `status="401"`); got != 8 {
		t.Fatalf(`braze_currents_http_requests{status="401"} = %v, want 8`, got)
	}
	if strings.Contains(p.proc.logs(), token) {
		t.Fatalf("the token is in the logs:\n%s", p.proc.logs())
	}
}

// TestCustomHTTPRefusesBadBodies: 400 with a reason for a body nothing can be
// split out of (a malformed event alone is dead-lettered: see
// TestCustomHTTPDeadLettersMalformedEvents), 413 past the size limit, with
// and without a length; nothing sent, nothing dead-lettered.
func TestCustomHTTPRefusesBadBodies(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s", "CURRENTS_HTTP_MAX_BODY_SIZE=1MiB")
	for _, c := range []struct{ name, body string }{
		{"not JSON", "hello"},
		{"truncated", `{"events": [{"event_type": "users.messages.email.Open"`},
		{"no events", `{"foo": 1}`},
		{"events not an array", `{"events": {"event_type": "x"}}`},
		{"an array", `[{"event_type": "users.messages.email.Open"}]`},
		{"two events arrays", `{"events": [{"event_type": "users.messages.email.Open"}], "events": []}`},
		{"two values", `{"events": []} {"events": []}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/currents", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer braze-token")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		reason, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || len(bytes.TrimSpace(reason)) == 0 {
			t.Fatalf("%s: status %d %q, want 400 with a reason", c.name, res.StatusCode, reason)
		}
	}
	// Over the limit, declared (refused from the header) and chunked
	// (refused once the limit was read).
	if code, _ := p.post("Bearer braze-token", io.LimitReader(repeatReader(' '), 2<<20), 2<<20); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB with a length: status %d, want 413", code)
	}
	if code, _ := p.post("Bearer braze-token", io.LimitReader(repeatReader(' '), 2<<20), -1); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB chunked: status %d, want 413", code)
	}
	if p.srv.UniqueMessageIDs() != 0 || len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("bad requests reached Segment (%d) or the dead letter file (%d)", p.srv.UniqueMessageIDs(), len(deadletter.Read(t, p.deadLetters, false)))
	}
	if got := p.metric("braze_currents_http_requests", `status="400"`); got != 7 {
		t.Fatalf(`braze_currents_http_requests{status="400"} = %v, want 7`, got)
	}
}

// TestCustomHTTPSegmentDown: while Segment is unreachable Braze gets 503
// with Retry-After, the events in flight are kept, and Braze's retry after
// the outage gets 200.
func TestCustomHTTPSegmentDown(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "2s")
	events := namedEvents(t, "users.messages.sms.Send", 10, 5)
	body := customHTTPBody(t, "users.messages.sms.Send", events)
	if err := p.srv.Down(); err != nil {
		t.Fatal(err)
	}
	code, h := p.post("Bearer braze-token", bytes.NewReader(body), int64(len(body)))
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("while Segment is down: status %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	if err := p.srv.Up(); err != nil {
		t.Fatal(err)
	}
	if code := p.postBytes("Bearer braze-token", body); code != http.StatusOK {
		t.Fatalf("Braze's retry after the outage: status %d", code)
	}
	p.checkDelivered(events)
	if p.srv.UniqueMessageIDs() != 10 || len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("%d calls in Segment, %d dead letters; want 10 and 0", p.srv.UniqueMessageIDs(), len(deadletter.Read(t, p.deadLetters, false)))
	}
}

// TestCustomHTTPKeyRefused: a refused write key holds the events (503 to
// Braze, nothing dead-lettered); once the key works they are delivered
// without Braze sending them again.
func TestCustomHTTPKeyRefused(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "2s")
	events := namedEvents(t, "users.messages.pushnotification.Send", 10, 9)
	p.srv.RevokeKey(true)
	code, h := p.post("Bearer braze-token", bytes.NewReader(customHTTPBody(t, "users.messages.pushnotification.Send", events)), -1)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("with the key refused: status %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	if len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("%d events dead-lettered for a refused key", len(deadletter.Read(t, p.deadLetters, false)))
	}
	p.srv.RevokeKey(false)
	waitFor(t, p.proc.events, time.Minute, "the held events delivered", func() (bool, error) {
		for _, r := range events {
			if p.srv.Count(r["id"].(string)) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("%d events dead-lettered", len(deadletter.Read(t, p.deadLetters, false)))
	}
}

// TestCustomHTTPTimeout: a Segment slower than the timeout gets Braze a 503,
// and the events in flight are still delivered.
func TestCustomHTTPTimeout(t *testing.T) {
	parallelWaiting(t)
	p := startHTTPPipeline(t, "braze-token", "1s")
	events := namedEvents(t, "users.messages.email.Click", 5, 3)
	p.srv.SlowNext(1, 3*time.Second)
	code, _ := p.post("Bearer braze-token", bytes.NewReader(customHTTPBody(t, "users.messages.email.Click", events)), -1)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status %d after the timeout, want 503", code)
	}
	waitFor(t, p.proc.events, 20*time.Second, "the events in flight delivered", func() (bool, error) {
		for _, r := range events {
			if p.srv.Count(r["id"].(string)) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// TestCustomHTTPMemoryUnderOversizeRequests: concurrent oversize requests,
// without a token and with one, leave the process's peak memory low: no
// body is held past the limit, none is read without the token.
//
// Not parallel: a peak RSS is measured, and other tests' load would delay
// the binary's garbage collection.
func TestCustomHTTPMemoryUnderOversizeRequests(t *testing.T) {
	checkOversizeMemory(t, 40<<20, "5s")
}

// checkOversizeMemory runs oversizeStorm with requests of size bytes against
// the shipped HTTP pipeline and checks its peak RSS stays under 150 MB.
func checkOversizeMemory(t *testing.T, size int64, timeout string) {
	t.Helper()
	p := startHTTPPipeline(t, "braze-token", timeout)
	oversizeStorm(t, p, 20, size)
	kb := vmHWM(t, p.proc.cmd.Process.Pid)
	t.Logf("peak RSS %.1f MiB after 3 × 20 concurrent %d MB requests", float64(kb)/1024, size>>20)
	if kb > 150<<10 {
		t.Fatalf("peak RSS %d MiB under oversize requests, want under 150", kb>>10)
	}
}

// oversizeStorm sends n concurrent requests of size bytes: without a token
// (401 before the body is read), with the token and a Content-Length (413
// from the header), and with the token, chunked (413 once the limit was
// read, or 503 while max_buffered_size is taken by the others).
func oversizeStorm(t *testing.T, p *httpPipeline, n int, size int64) {
	t.Helper()
	for _, c := range []struct {
		auth   string
		length int64
		want   []int
	}{
		{"", size, []int{http.StatusUnauthorized}},
		{"Bearer braze-token", size, []int{http.StatusRequestEntityTooLarge}},
		{"Bearer braze-token", -1, []int{http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}},
	} {
		codes := make(chan int, n)
		for range n {
			go func() {
				req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/currents", io.LimitReader(repeatReader('X'), size))
				req.ContentLength = c.length
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					codes <- -1
					return
				}
				res.Body.Close()
				codes <- res.StatusCode
			}()
		}
		for range n {
			if code := <-codes; !slices.Contains(c.want, code) {
				t.Fatalf("oversize request (auth %q, length %d): status %d, want one of %v", c.auth, c.length, code, c.want)
			}
		}
	}
}

// vmHWM is the peak resident set of pid so far, in kB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err == nil {
				return kb
			}
		}
	}
	t.Fatalf("no VmHWM for %d", pid)
	return 0
}

// repeatReader is an endless stream of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestCustomHTTPGzip: a gzip body reaches Segment as a plain one does, and
// Braze's retry of it is deduplicated there through the same messageIds.
func TestCustomHTTPGzip(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "60s")
	events := namedEvents(t, "users.messages.email.Delivery", 20, 13)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(customHTTPBody(t, "users.messages.email.Delivery", events))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	gz := func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }
	for range 2 { // Braze's delivery and its retry
		if code, _ := p.post("Bearer braze-token", bytes.NewReader(buf.Bytes()), int64(buf.Len()), gz); code != http.StatusOK {
			t.Fatalf("status %d for a gzip body\n%s", code, lastLines(p.proc.logs(), 30))
		}
	}
	p.checkDelivered(events)
	if p.srv.UniqueMessageIDs() != 20 || len(deadletter.Read(t, p.deadLetters, false)) != 0 {
		t.Fatalf("%d calls in Segment, %d dead letters; want 20 and 0", p.srv.UniqueMessageIDs(), len(deadletter.Read(t, p.deadLetters, false)))
	}
}

// TestCustomHTTPBufferedSizeSetting: CURRENTS_HTTP_MAX_BUFFERED_SIZE sets the
// budget of the requests in flight. While Segment is down the pipeline holds
// many times that budget (the input's events, the mapped calls, the output's
// requests): 12 to 18 times it (387 MB at 32 MiB), and the shipped config
// had no way to set it.
func TestCustomHTTPBufferedSizeSetting(t *testing.T) {
	parallelCPU(t)
	p := startHTTPPipeline(t, "braze-token", "1s", "CURRENTS_HTTP_MAX_BODY_SIZE=64KiB", "CURRENTS_HTTP_MAX_BUFFERED_SIZE=64KiB")
	if err := p.srv.Down(); err != nil {
		t.Fatal(err)
	}
	// Each request over half the budget: the first's events are held in the
	// pipeline, so the second cannot be taken.
	for i, seed := range []uint64{21, 22} {
		events := namedEvents(t, "users.messages.email.Send", 45, seed)
		body := customHTTPBody(t, "users.messages.email.Send", events)
		if len(body) < 32<<10 || len(body) > 64<<10 {
			t.Fatalf("a body of %d bytes, want between half the budget and all of it", len(body))
		}
		if code := p.postBytes("Bearer braze-token", body); code != http.StatusServiceUnavailable {
			t.Fatalf("request %d while Segment is down: status %d, want 503", i, code)
		}
	}
	// The log line may reach the test after the answer.
	p.proc.waitLines(1, time.Minute, "busy: 65536 bytes of earlier requests are still in flight")
}
