package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

const testEvent = `{"event_type": "users.messages.email.Open", "id": "e1", "time": 1764590400,
	"properties": {"email_address": "a@example.com"}, "user": {"external_user_id": "u1", "user_id": "b1"}}`

// startHTTPInput runs the input, with the token tok, on a loopback port and
// returns its URL. Once the input is closed, the test fails if it answered a
// status that httpStatuses lacks.
func startHTTPInput(t *testing.T, conf string) (*httpInput, string) {
	t.Helper()
	res, metrics := promscrape.Resources(t)
	t.Cleanup(func() { wantStatusesListed(t, metrics) })
	return startHTTPInputWith(t, res, "token: tok\n"+conf)
}

// startHTTPInputWith runs the input of conf (its address aside) with res.
func startHTTPInputWith(t *testing.T, res *service.Resources, conf string) (*httpInput, string) {
	t.Helper()
	return connectHTTPInput(t, newHTTPInput(t, res, conf))
}

// newHTTPInput is the input of conf (its address aside) with res, not yet
// listening: a test may set what its server reads (its clock) before.
func newHTTPInput(t *testing.T, res *service.Resources, conf string) *httpInput {
	t.Helper()
	parsed, err := httpInputSpec().ParseYAML("address: 127.0.0.1:0\n"+conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := httpInputFromParsed(parsed, res)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// connectHTTPInput starts in and returns its URL.
func connectHTTPInput(t *testing.T, in *httpInput) (*httpInput, string) {
	t.Helper()
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	scheme := "http"
	if in.certFile != "" {
		scheme = "https"
	}
	return in, scheme + "://" + <-in.bound + "/currents"
}

type reply struct {
	status int
	header http.Header
	body   string
}

// postAsync POSTs body with the token and delivers the reply on the channel.
func postAsync(client *http.Client, url, body string) <-chan reply {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	return doAsync(client, req)
}

// doAsync sends req and delivers the reply on the channel.
func doAsync(client *http.Client, req *http.Request) <-chan reply {
	out := make(chan reply, 1)
	go func() { out <- replyOf(client.Do(req)) }()
	return out
}

// replyOf is the reply of a response read, its body read and closed.
func replyOf(res *http.Response, err error) reply {
	if err != nil {
		return reply{status: -1, body: err.Error()}
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return reply{res.StatusCode, res.Header, string(data)}
}

func readRequest(t *testing.T, in *httpInput) (service.MessageBatch, service.AckFunc) {
	t.Helper()
	batch, ack, err := in.ReadBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return batch, ack
}

// TestHTTPInputAnswersWithTheAcknowledgement: 200 only after the batch was
// acknowledged; a nack is a 503 with Retry-After, so Braze retries.
func TestHTTPInputAnswersWithTheAcknowledgement(t *testing.T) {
	in, url := startHTTPInput(t, "retry_after: 7s")
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`, `+testEvent+`]}`)
	batch, ack := readRequest(t, in)
	if len(batch) != 2 {
		t.Fatalf("%d messages, want 2", len(batch))
	}
	select {
	case r := <-answer:
		t.Fatalf("answered %d before the acknowledgement", r.status)
	default:
	}
	v, err := batch[1].AsStructured()
	if err != nil {
		t.Fatal(err)
	}
	rec := v.(map[string]any)
	if rec["external_user_id"] != "u1" || rec["email_address"] != "a@example.com" || rec["time"] != int64(1764590400) {
		t.Fatalf("record %v", rec)
	}
	if et, _ := batch[1].MetaGet(MetaEventType); et != "users.messages.email.Open" {
		t.Fatalf("event type %q", et)
	}
	if src, _ := batch[1].MetaGet(MetaSource); !strings.HasPrefix(src, "http request 1 from 127.0.0.1:") {
		t.Fatalf("source %q", src)
	}
	if idx, _ := batch[1].MetaGetMut(MetaRecordIndex); idx != int64(1) {
		t.Fatalf("record index %v", idx)
	}
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("status %d %q after the acknowledgement", r.status, r.body)
	}

	answer = postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	_, ack = readRequest(t, in)
	_ = ack(context.Background(), errors.New("the dead letter file is not writable"))
	r := <-answer
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" || !strings.Contains(r.body, "not writable") {
		t.Fatalf("after a nack: %d, Retry-After %q, %q", r.status, r.header.Get("Retry-After"), r.body)
	}
}

// TestHTTPInputBoundsBufferedBodies: while max_buffered_size is held by
// requests in flight, another waits and then gets 503; once they are
// acknowledged, requests go through again.
func TestHTTPInputBoundsBufferedBodies(t *testing.T) {
	// The timeout is waited out twice, and bounds the third request's read
	// and ack: a second leaves room for a loaded machine.
	in, url := startHTTPInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 1s")
	// Over half the budget: two cannot be held at once.
	body := `{"events": [` + testEvent + `], "padding": "` + strings.Repeat("x", 600) + `"}`
	first := postAsync(http.DefaultClient, url, body)
	_, ack := readRequest(t, in)
	// The first is answered 503 at its timeout, but its events are still in
	// the pipeline: their bytes stay held.
	if r := <-first; r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "not yet delivered") {
		t.Fatalf("unacknowledged request: %d %q", r.status, r.body)
	}
	if r := <-postAsync(http.DefaultClient, url, body); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") {
		t.Fatalf("request over the budget: %d %q", r.status, r.body)
	}
	_ = ack(context.Background(), nil)
	third := postAsync(http.DefaultClient, url, body)
	_, ack = readRequest(t, in)
	_ = ack(context.Background(), nil)
	if r := <-third; r.status != http.StatusOK {
		t.Fatalf("after the budget was released: %d %q", r.status, r.body)
	}
}

// TestHTTPInputHeldMemoryFollowsTheBudget: each request is charged its
// body's bytes plus eventCharge per event, and what the events handed over
// hold stays under 4 times that, however small they are. A body of the
// budget's size in the smallest events could never be held: it is refused
// 413, rather than held at about 90 times max_buffered_size as it was.
func TestHTTPInputHeldMemoryFollowsTheBudget(t *testing.T) {
	const budget = 4 << 20
	in, url := startHTTPInput(t, "max_body_size: 4MiB\nmax_buffered_size: 4MiB")
	const event = `{"event_type":"a"}`
	tiny := func(n int) string { return `{"events":[` + strings.Repeat(event+",", n-1) + event + `]}` }
	big := tiny((budget - 32) / (len(event) + 1))
	if r := <-postAsync(http.DefaultClient, url, big); r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "over the 4194304 of max_buffered_size") {
		t.Fatalf("a %d-byte body of the smallest events: %d %q, want 413 naming max_buffered_size", len(big), r.status, r.body)
	}
	body := tiny((budget - 32) / (len(event) + 1 + eventCharge))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	answer := postAsync(http.DefaultClient, url, body)
	batch, ack := readRequest(t, in)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(batch)
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if held > 4*budget {
		t.Fatalf("a %d-byte body of %d events, within a %d-byte max_buffered_size, holds %d bytes: %.1f times the budget", len(body), len(batch), budget, held, float64(held)/budget)
	}
	t.Logf("%d events of %d bytes of JSON hold %d bytes: %.2f times the budget", len(batch), len(body), held, float64(held)/budget)
}

// TestHTTPInputPipelineNotReading: a pipeline that takes no events within
// the timeout gets Braze a 503, and the events are not handed over later.
func TestHTTPInputPipelineNotReading(t *testing.T) {
	in, url := startHTTPInput(t, "timeout: 200ms")
	if r := <-postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "took no events") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := in.ReadBatch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request answered 503 was still handed over: %v", err)
	}
}

// TestHTTPInputClose: a request waiting for its acknowledgement is answered
// 503 when the input closes, saying so (not that the timeout passed and the
// events are kept: the process is stopping), and reading ends.
func TestHTTPInputClose(t *testing.T) {
	in, url := startHTTPInput(t, "")
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	readRequest(t, in)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-answer; r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "shutting down") || strings.Contains(r.body, "within") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if _, _, err := in.ReadBatch(context.Background()); !errors.Is(err, service.ErrEndOfInput) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
}

// TestHTTPInputMetricSeriesStayBounded: events_received is labelled with the
// event types the project knows, and counts every other type under "other":
// the types come from request bodies, and each distinct string would
// otherwise be a Prometheus series held for the life of the process.
func TestHTTPInputMetricSeriesStayBounded(t *testing.T) {
	res, metricsURL := countResources(t)
	in, url := startHTTPInputWith(t, res, "token: tok")
	const requests, typesEach = 3, 1000
	for r := range requests {
		events := []string{testEvent}
		for i := range typesEach {
			events = append(events, fmt.Sprintf(`{"event_type": "made.up.%d.%d", "id": "e%d"}`, r, i, i))
		}
		answer := postAsync(http.DefaultClient, url, `{"events": [`+strings.Join(events, ",")+`]}`)
		batch, ack := readRequest(t, in)
		if et, _ := batch[1].MetaGet(MetaEventType); et != "made.up."+strconv.Itoa(r)+".0" {
			t.Fatalf("the event's metadata says %q: only the metric's label is bounded", et)
		}
		_ = ack(context.Background(), nil)
		if a := <-answer; a.status != http.StatusOK {
			t.Fatalf("%d %q", a.status, a.body)
		}
	}
	got := countsByType(t, metricsURL)["braze_currents_http_events_received"]
	want := map[string]float64{"users.messages.email.Open": requests, otherEventType: requests * typesEach}
	if !maps.Equal(got, want) {
		t.Fatalf("braze_currents_http_events_received by event_type: %v, want %v", got, want)
	}
}

func TestHTTPInputRefusesMethodsAndEmptyBatches(t *testing.T) {
	_, url := startHTTPInput(t, "")
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	if r := <-postAsync(http.DefaultClient, url, `{"events": []}`); r.status != http.StatusOK {
		t.Fatalf("no events: %d %q", r.status, r.body)
	}
}

// TestHTTPInputRefusesDuplicateKeys: a body naming "events" twice is
// answered 400 naming the key, and nothing of it is handed over:
// encoding/json alone keeps the last value, so the events of the first array
// were answered 200 and delivered nowhere. An event naming properties twice
// is handed over alone as an error naming the key (encoding/json would have
// dropped the first properties from it), the other events as usual.
func TestHTTPInputRefusesDuplicateKeys(t *testing.T) {
	in, url := startHTTPInput(t, "")
	reads := reader(t, in)
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`], "events": []}`)
	select {
	case r := <-reads:
		v, _ := r.batch[0].AsStructured()
		t.Errorf("a body with a duplicate key was handed over as %v", v)
		_ = r.ack(context.Background(), nil)
		<-answer
	case r := <-answer:
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `the key "events" appears twice`) {
			t.Errorf("a body naming events twice: %d %q, want 400 naming the key", r.status, strings.TrimSpace(r.body))
		}
	}

	const twice = `{"event_type": "users.messages.email.Open", "id": "e2", "time": 1764590400,
			"properties": {"email_address": "a@example.com"}, "properties": {}, "user": {"external_user_id": "u1"}}`
	answer = postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`, `+twice+`]}`)
	batch, ack := readOrAnswer(t, reads, answer)
	if len(batch) != 2 || batch[0].GetError() != nil {
		t.Fatalf("%d messages (the first errored: %v), want the good event and the errored one", len(batch), batch[0].GetError())
	}
	raw, _ := batch[1].AsBytes()
	if err := batch[1].GetError(); err == nil || err.Error() != `event 1 (id "e2"): the key "properties" appears twice` || string(raw) != twice {
		t.Fatalf("the event naming properties twice: error %v, content %q", err, raw)
	}
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("%d %q", r.status, r.body)
	}
}

func TestHTTPInputConfigErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"token: ''", "token is empty"},
		{"token: t\npath: currents", "does not start with /"},
		{"token: t\nmax_body_size: lots", "max_body_size"},
		{"token: t\nmax_body_size: 0", "max_body_size"},
		{"token: t\nmax_body_size: 8MiB\nmax_buffered_size: 1MiB", "below max_body_size"},
		{"token: t\ncert_file: c.pem", "set both cert_file and key_file"},
		{"token: t\ntimeout: 0s", "timeout must be positive"},
		// Answered as Retry-After: -10, which no client reads as a delay.
		{"token: t\nretry_after: -10s", "retry_after must not be negative"},
		{"token: t\nidle_timeout: 0s", "idle_timeout must be positive"},
		// Retried every second, for ever, as if the port were only taken.
		{"token: t\naddress: 'bad::addr'", `address "bad::addr"`},
		{"token: t\naddress: 127.0.0.1:99999", `address "127.0.0.1:99999"`},
		{"token: t\naddress: '8080'", `address "8080"`},
		{"token: t\naddress: localhost", "(CURRENTS_HTTP_ADDRESS in the shipped configs)"},
	} {
		parsed, err := httpInputSpec().ParseYAML(c.conf, nil)
		if err == nil {
			_, err = httpInputFromParsed(parsed, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one saying %q", c.conf, err, c.want)
		}
	}
}

// TestHTTPInputRefusesAnUnsendableToken: a token with whitespace at either
// end (a pasted secret) or a control character is refused at start, without
// printing it. HTTP strips a header value's surrounding whitespace, so no
// request could carry it: every Braze request would get 401, logged at debug
// level only, until Braze gave up after 5 days.
func TestHTTPInputRefusesAnUnsendableToken(t *testing.T) {
	for _, token := range []string{"s3cret ", " s3cret", "s3cret\n", "\ts3cret", "s3\x00cret"} {
		parsed, err := httpInputSpec().ParseYAML("address: 127.0.0.1:0\ntoken: "+strconv.Quote(token), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = httpInputFromParsed(parsed, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), "cannot carry") || strings.Contains(err.Error(), "s3") {
			t.Errorf("token %q: error %v, want one saying HTTP cannot carry it, without the token", token, err)
		}
	}
	// Whitespace within the token is sent and compared as it is.
	_, url := startHTTPInputWith(t, service.MockResources(), "token: two words")
	if status, _ := postTo(t, http.MethodPost, url, "two words"); status != http.StatusOK {
		t.Fatalf("a token with a space within: %d", status)
	}
}

// TestHTTPInputBudgetRefusalSaysWhatTakesIt: with max_buffered_size at
// max_body_size (the shipped default), a body within max_body_size but
// within 128 bytes an event of it is charged over the budget: refused 413
// at every retry, the answer and the log say which budget would take it.
func TestHTTPInputBudgetRefusalSaysWhatTakesIt(t *testing.T) {
	_, url := startHTTPInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB")
	body := `{"events": [` + testEvent + `], "padding": "`
	body += strings.Repeat("x", 1024-len(body)-2) + `"}`
	r := <-postAsync(http.DefaultClient, url, body)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "until max_buffered_size is at least 1152") {
		t.Fatalf("a %d-byte body of one event, max_body_size and max_buffered_size 1 KiB: %d %q, want 413 naming the budget that takes it", len(body), r.status, r.body)
	}
}
