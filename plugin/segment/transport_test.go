package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const testKey = "wk-unit-test-0001"

// newTestOutput builds and connects the output from YAML.
func newTestOutput(t testing.TB, yaml string) *output {
	t.Helper()
	conf, err := outputSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := outputFromParsed(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close(context.Background()) })
	return out
}

// standInBehindAFront starts the Segment stand-in and returns it with a
// handler that forwards requests to it, for a test's front to call once it
// lets requests through.
func standInBehindAFront(t *testing.T) (*segmentapi.Server, http.Handler) {
	t.Helper()
	api := segmentapi.StartT(t, testKey)
	target, err := url.Parse(api.URL())
	if err != nil {
		t.Fatal(err)
	}
	return api, httputil.NewSingleHostReverseProxy(target)
}

func trackBatch(n int, from int, extra string) service.MessageBatch {
	batch := make(service.MessageBatch, n)
	for i := range batch {
		batch[i] = service.NewMessage([]byte(fmt.Sprintf(
			`{"type":"track","event":"Email Sent","userId":"u%d","messageId":"m-%d","properties":{"p":"%s"}}`, from+i, from+i, extra)))
	}
	return batch
}

// batchErrors is the error of each index of batch after WriteBatch.
func batchErrors(batch service.MessageBatch, err error) []error {
	errs := make([]error, len(batch))
	var be *service.BatchError
	if errors.As(err, &be) {
		be.WalkMessages(func(i int, _ *service.Message, err error) bool {
			errs[i] = err
			return true
		})
	} else if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

func TestStatusClasses(t *testing.T) {
	for status, want := range map[int]string{
		200: "ok", 204: "ok", 400: "permanent", 401: "permanent", 403: "permanent", 404: "permanent",
		413: "permanent", 422: "permanent", 408: "transient", 429: "transient", 500: "transient",
		502: "transient", 503: "transient", 504: "transient", 501: "permanent", 505: "permanent", 302: "permanent",
	} {
		ok, transient := statusClass(status)
		got := map[bool]string{true: "transient", false: "permanent"}[transient]
		if ok {
			got = "ok"
		}
		if got != want {
			t.Errorf("status %d classed %s, want %s", status, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "0": 0, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		// Longer than the cap: capped, not wrapped round to a short or
		// negative wait by the multiplication into nanoseconds.
		"9223372037":                    maxRetryAfter,
		"18446744074":                   maxRetryAfter,
		"99999999999999999999":          maxRetryAfter,
		"Fri, 31 Dec 9999 23:59:59 GMT": maxRetryAfter,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for yaml, want := range map[string]string{
		// Named as the shipped configs set it, as the region is.
		`region: us`: "write_key (or write_keys) is required: the Segment source's write key (SEGMENT_WRITE_KEY in the shipped configs)",
		`{write_key: k, max_calls_per_request: 2501}`: "between 1 and 2500",
		`{write_key: k, max_calls_per_request: 0}`:    "between 1 and 2500",
		// 0 is no timeout for Go's client; here every request failed at once,
		// for ever, reported as Segment unreachable.
		`{write_key: k, request_timeout: 0s}`: "request_timeout must be above 0",
		// 0 took the output down at the first transient failure, so a 429's
		// Retry-After went unheeded: the probe and the batch came at once.
		`{write_key: k, unreachable_after: 0s}`:  "unreachable_after must be above 0",
		`{write_key: k, unreachable_after: -1s}`: "unreachable_after must be above 0",
	} {
		conf, err := outputSpec().ParseYAML(yaml, nil)
		if err == nil {
			_, err = outputFromParsed(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want error containing %q", yaml, err, want)
		}
	}
	out := newTestOutput(t, `{write_key: k, region: eu}`)
	if out.s.batchURL != "https://events.eu1.segmentapis.com/v1/batch" {
		t.Fatalf("eu requests go to %q", out.s.batchURL)
	}
}

// A refused key (analytics-go would retry a 401 ten times, then drop the
// calls) fails every call alike: the batch goes back as not connected, held,
// with no retry and no split, until a probe finds the key accepted. So does
// any answer that blames the endpoint or a proxy in front of it rather than
// the calls (a proxy's 407, a 405 or 415 from something that is not the API):
// it once sent the whole stream to the dead letters.
func TestRefusedKeyHoldsTheCalls(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusProxyAuthRequired, http.StatusUnsupportedMediaType, http.StatusNotImplemented} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := segmentapi.StartT(t, testKey)
			srv.FailNext(2, status) // the request, then the first probe
			out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
			batch := trackBatch(20, 0, "x")
			if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
				t.Fatalf("write answered %d: %v, want not connected", status, err)
			}
			if got := srv.Stats().Requests; got != 1 {
				t.Fatalf("%d requests for a refused key, want 1", got)
			}
			// Connect probes until the key works: the first probe is refused too.
			if err := out.Connect(context.Background()); err != nil {
				t.Fatalf("connect once the key works: %v", err)
			}
			if got := srv.Stats().Requests; got != 3 {
				t.Fatalf("%d requests, want the refused one and two probes", got)
			}
			if err := out.WriteBatch(context.Background(), batch); err != nil || srv.UniqueMessageIDs() != 20 {
				t.Fatalf("write once the key works: %v, %d accepted", err, srv.UniqueMessageIDs())
			}
		})
	}
}

// Segment documents no answer to an empty batch, the probe's body: should
// it refuse one (400), that still shows the key was taken, as the API reads
// a batch only under a key it takes. Waiting for a 2xx alone would hold the
// stream until a restart.
func TestProbeTakesARefusedEmptyBatchAsTheKeyWorking(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	srv.FailNext(1, http.StatusUnauthorized)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	batch := trackBatch(5, 0, "x")
	if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write answered 401: %v, want not connected", err)
	}
	srv.FailNext(100, http.StatusBadRequest)                                 // every empty batch refused
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // bounds the failure only
	defer cancel()
	if err := out.Connect(ctx); err != nil {
		t.Fatalf("connect once the key works, the probe answered 400: %v", err)
	}
	if got := srv.Stats().Requests; got != 2 {
		t.Fatalf("%d requests, want the refused one and one probe", got)
	}
	srv.ClearFaults()
	if err := out.WriteBatch(context.Background(), batch); err != nil || srv.UniqueMessageIDs() != 5 {
		t.Fatalf("write once the key works: %v, %d accepted", err, srv.UniqueMessageIDs())
	}
}

// A permanent answer about the calls is not retried.
func TestPermanentStatusIsNotRetried(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	srv.FailNext(1, http.StatusUnprocessableEntity)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	batch := trackBatch(1, 0, "x")
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	if !IsPermanent(errs[0]) || !strings.Contains(errs[0].Error(), "422") {
		t.Fatalf("%v, want a permanent 422 failure", errs[0])
	}
	if got := srv.Stats().Requests; got != 1 {
		t.Fatalf("%d requests for one permanently rejected call, want 1", got)
	}
}

// A 400 for a batch is split until the calls at fault are found; the others
// are accepted, not dead-lettered with them.
func TestRejectedBatchIsSplitToFindTheBadCalls(t *testing.T) {
	srv := segmentapi.StartT(t, testKey, segmentapi.WithMaxCallBytes(1500))
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	batch := trackBatch(40, 0, "small")
	big := strings.Repeat("b", 2000)
	for _, i := range []int{3, 17, 31} {
		batch[i] = trackBatch(1, i, big)[0]
	}
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	for i, err := range errs {
		bad := i == 3 || i == 17 || i == 31
		if bad != (err != nil) || (bad && !IsPermanent(err)) {
			t.Errorf("call %d: error %v (bad call: %v)", i, err, bad)
		}
		if got := srv.Count(fmt.Sprintf("m-%d", i)); got != map[bool]int{true: 0, false: 1}[bad] {
			t.Errorf("call %d accepted %d times", i, got)
		}
	}
}

func TestInvalidCallsFailAloneAndAreNeverSent(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL()))
	batch := trackBatch(5, 0, "x")
	batch[1] = service.NewMessage([]byte(`{"type":"track","event":"E"}`))
	batch[3] = service.NewMessage([]byte(`{"type":"track","event":"E","userId":"u","properties":{"p":"` + strings.Repeat("z", 33000) + `"}}`))
	errs := batchErrors(batch, out.WriteBatch(context.Background(), batch))
	if !strings.Contains(fmt.Sprint(errs[1]), "(invalid)") || !strings.Contains(fmt.Sprint(errs[3]), "(too_large)") {
		t.Fatalf("errors %v", errs)
	}
	if errs[0] != nil || errs[2] != nil || errs[4] != nil || srv.UniqueMessageIDs() != 3 {
		t.Fatalf("valid calls: errors %v, %d accepted", errs, srv.UniqueMessageIDs())
	}
}

// The calls of a request that gave up go to the dead letter output with
// this error: it names where they were sent, as an answer's body (here
// empty) need not.
func TestRetriesStopAtMaxRetries(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	srv.FailNext(10, http.StatusInternalServerError)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_retries: 2, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	batch := trackBatch(3, 0, "x")
	want := fmt.Sprintf("Segment at %s (endpoint set, region us), gave up after 3 attempts", srv.URL())
	for _, err := range batchErrors(batch, out.WriteBatch(context.Background(), batch)) {
		if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want a transient failure naming %q", err, want)
		}
	}
	if got := srv.Stats().Requests; got != 3 {
		t.Fatalf("%d requests, want 3", got)
	}
}

func TestDryRunWritesTheExactBodies(t *testing.T) {
	lines := dryRunLines(t, "max_calls_per_request: 4", trackBatch(10, 0, "x"))
	seen := 0
	for _, line := range lines {
		var body struct {
			Batch  []map[string]any `json:"batch"`
			SentAt string           `json:"sentAt"`
		}
		if err := json.Unmarshal([]byte(line), &body); err != nil || body.SentAt == "" {
			t.Fatalf("dry-run line is not a batch body: %s", line)
		}
		if len(body.Batch) > 4 {
			t.Fatalf("a body of %d calls, max_calls_per_request is 4", len(body.Batch))
		}
		seen += len(body.Batch)
	}
	if seen != 10 || len(lines) != 3 {
		t.Fatalf("%d calls in %d bodies, want 10 in 3", seen, len(lines))
	}
}

// dryRunLines writes batch through a dry-run output configured with extra
// (YAML fields, or empty) and returns the lines it wrote.
func dryRunLines(t *testing.T, extra string, batch service.MessageBatch) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dry.jsonl")
	out := newTestOutput(t, fmt.Sprintf(`{dry_run: true, dry_run_path: %s, %s}`, path, extra))
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	_ = out.Close(context.Background())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// When Segment accepts nothing for unreachable_after, the batch goes back as
// not connected (the output is down, as /ready reports), and Connect
// succeeds again only once Segment answers.
func TestUnreachableSegmentMarksTheOutputDown(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, unreachable_after: 50ms, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	batch := trackBatch(5, 0, "x")
	if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write while Segment is down: %v, want not connected", err)
	}
	// Connect probes until Segment answers, or until it is given up on.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := out.Connect(ctx); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("connect while Segment is down: %v", err)
	}
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	if err := out.Connect(context.Background()); err != nil {
		t.Fatalf("connect once Segment is back: %v", err)
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if srv.UniqueMessageIDs() != 5 {
		t.Fatalf("%d calls accepted, want 5", srv.UniqueMessageIDs())
	}
}

// Unreachable is judged by how long requests have been failing, on the
// output's clock: an idle spell before a failure does not count, and
// failures for unreachable_after do.
func TestUnreachableCountsFailingTimeOnly(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, unreachable_after: 30s, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	clock := clockwork.NewFakeClock()
	out.s.clock = clock
	if err := out.WriteBatch(context.Background(), trackBatch(3, 0, "x")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // idle
	srv.FailNext(2, http.StatusServiceUnavailable)
	if err := out.WriteBatch(context.Background(), trackBatch(3, 3, "x")); err != nil {
		t.Fatalf("a 503 after an idle hour: %v, want the calls retried and accepted", err)
	}

	failed := make(chan struct{}, 100)
	srv.OnRequest(func(*http.Request, []segmentapi.Call) {
		select {
		case failed <- struct{}{}:
		default:
		}
	})
	srv.Outage503(true)
	result := make(chan error, 1)
	go func() { result <- out.WriteBatch(context.Background(), trackBatch(3, 6, "x")) }()
	// The first failure starts the count; the second request is sent only
	// after the first failure was counted.
	<-failed
	<-failed
	clock.Advance(31 * time.Second)
	if err := <-result; !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("failing for longer than unreachable_after: %v, want not connected", err)
	}
}

// A backoff with max_elapsed_time gives up when it runs out, like
// max_retries, instead of retrying at once for ever.
func TestRetriesStopWhenTheBackoffGivesUp(t *testing.T) {
	srv := segmentapi.StartT(t, testKey)
	srv.Outage503(true)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, backoff: {initial_interval: 1ms, max_interval: 2ms, max_elapsed_time: 20ms}}`, testKey, srv.URL()))
	batch := trackBatch(2, 0, "x")
	for _, err := range batchErrors(batch, out.WriteBatch(context.Background(), batch)) {
		if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "gave up after") {
			t.Fatalf("error %v, want a transient failure that gave up", err)
		}
	}
}

// A request that fails before an answer (here: nothing listens) is reported
// with Go's error, which quotes the request's URL: a proxy endpoint's query
// values, which may be its credentials, are written xxxxx there too.
func TestFailedRequestNeverPrintsTheEndpointsQuery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: "http://%s/?token=rtok-never-print"}`, testKey, addr))
	res := out.s.post(context.Background(), "Basic x", []byte(`{"batch":[]}`))
	if res.err == nil || !strings.Contains(res.detail, "token=xxxxx") || strings.Contains(res.detail, "never-print") {
		t.Fatalf("failed request reported as %q (%v), want the endpoint's query value written xxxxx", res.detail, res.err)
	}
}
