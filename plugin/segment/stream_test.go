package segment_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func TestStreamHappyPath(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"max_calls_per_request": 100})})

	ids := messageIDs("happy", 1200)
	requireAcked(t, r.push(t, trackBatches(ids, 200, nil)...))
	requireDelivered(t, api, ids)

	st := api.Stats()
	if st.MaxCallsInRequest > 100 {
		t.Errorf("a request carried %d calls, over max_calls_per_request 100", st.MaxCallsInRequest)
	}
	if st.Accepted != 1200 || api.Duplicates() != 0 {
		t.Errorf("accepted %d calls with %d duplicates, want 1200 and none", st.Accepted, api.Duplicates())
	}
	// The stand-in records calls only under its write key.
	if st.Unauthorized != 0 || st.UnknownKeyCalls != 0 {
		t.Errorf("auth failed: %d unauthorized requests, %d calls under an unknown key", st.Unauthorized, st.UnknownKeyCalls)
	}
}

func TestStreamKeepAlive(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	const maxInFlight = 4
	holdFirst(api, maxInFlight)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{
		"max_calls_per_request": 25, "max_in_flight": maxInFlight,
	})})

	ids := messageIDs("keepalive", 1000)
	batches := trackBatches(ids, 25, nil) // one request each
	errs := r.push(t, batches...)         // all at once: the output takes maxInFlight at a time
	requireAcked(t, errs)
	requireDelivered(t, api, ids)

	st := api.Stats()
	if st.Requests != len(batches) || st.MaxConcurrent != maxInFlight {
		t.Errorf("%d requests, at most %d at once; want %d and %d", st.Requests, st.MaxConcurrent, len(batches), maxInFlight)
	}
	if st.ConnectionsOpened > maxInFlight {
		t.Errorf("%d connections opened for %d requests, want at most max_in_flight %d (keep-alive)", st.ConnectionsOpened, st.Requests, maxInFlight)
	}
}

func TestStreamServerErrorsRetried(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	api.FailNext(3, http.StatusServiceUnavailable)
	api.FailNext(1, http.StatusInternalServerError)
	api.FailNext(1, http.StatusBadGateway)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"max_calls_per_request": 50})})

	ids := messageIDs("5xx", 200)
	requireAcked(t, r.push(t, trackBatches(ids, 50, nil)...))
	requireDelivered(t, api, ids)

	st := api.Stats()
	if st.Faulted[segmentapi.FaultFail] != 5 {
		t.Errorf("faults served = %v, want 5 fails", st.Faulted)
	}
	// Four requests succeed; each of the five failures costs one retry.
	if st.Requests != 9 || r.logs.count(retryLog) != 5 {
		t.Errorf("%d requests and %d retries logged, want 9 and 5", st.Requests, r.logs.count(retryLog))
	}
	for _, code := range []string{"503", "500", "502"} {
		if r.logs.count("HTTP "+code) == 0 {
			t.Errorf("no retry logged for HTTP %s", code)
		}
	}
	// Each retry says where it went, as several outputs may share a log.
	if n := r.logs.count("(Segment at " + api.URL() + " (endpoint set, region us))"); n != 5 {
		t.Errorf("%d retries logged naming the endpoint, want 5", n)
	}
}

func TestStreamRateLimitHonoursRetryAfter(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	type answer struct {
		at      time.Time
		limited bool
	}
	var mu sync.Mutex
	var answers []answer
	// The hook runs just before the answer is written: its time bounds the
	// 429's answer from below and the retry's arrival from above (by the
	// microseconds a small request takes to process).
	api.OnRequest(func(_ *http.Request, calls []segmentapi.Call) {
		mu.Lock()
		answers = append(answers, answer{at: time.Now(), limited: calls == nil})
		mu.Unlock()
	})
	api.RateLimitNext(1, time.Second)
	// A 10ms backoff: only Retry-After can explain a wait of a second.
	r := startStream(t, map[string]any{"segment": segmentConf(api, nil)})

	ids := messageIDs("429", 20)
	requireAcked(t, r.push(t, trackBatches(ids, 20, nil)...))
	requireDelivered(t, api, ids)

	mu.Lock()
	defer mu.Unlock()
	if len(answers) != 2 || !answers[0].limited || answers[1].limited {
		t.Fatalf("answers = %+v, want a 429 then an accepted retry", answers)
	}
	if gap := answers[1].at.Sub(answers[0].at); gap < time.Second {
		t.Errorf("retry arrived %v after the 429, before its Retry-After of 1s", gap)
	}
	if r.logs.count("HTTP 429") != 1 {
		t.Errorf("want one retry logged for the 429; logs:\n%s", strings.Join(r.logs.all(), "\n"))
	}
}

func TestStreamSlowAnswersTimeOut(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	api.SlowNext(2, 2*time.Second)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{
		"request_timeout": "200ms", "max_calls_per_request": 50,
	})})

	ids := messageIDs("slow", 100)
	requireAcked(t, r.push(t, trackBatches(ids, 100, nil)...))
	requireDelivered(t, api, ids)

	if st := api.Stats(); st.Faulted[segmentapi.FaultSlow] != 2 {
		t.Errorf("faults served = %v, want 2 slow", st.Faulted)
	}
	if n := r.logs.count("deadline exceeded"); n < 2 {
		t.Errorf("%d timed-out requests retried, want 2; logs:\n%s", n, strings.Join(r.logs.all(), "\n"))
	}
}

func TestStreamDroppedConnectionsRetried(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	api.DropNext(3)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"max_calls_per_request": 50})})

	ids := messageIDs("drop", 150)
	requireAcked(t, r.push(t, trackBatches(ids, 50, nil)...))
	requireDelivered(t, api, ids)

	if st := api.Stats(); st.Faulted[segmentapi.FaultDrop] != 3 {
		t.Errorf("faults served = %v, want 3 drops", st.Faulted)
	}
	if n := r.logs.count(retryLog); n < 3 {
		t.Errorf("%d retries logged, want at least 3", n)
	}
}

func TestStreamListenerOutage(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	if err := api.Down(); err != nil {
		t.Fatal(err)
	}
	r := startStream(t, map[string]any{"segment": segmentConf(api, nil)})

	ids := messageIDs("down", 300)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	acks := r.pushAsync(ctx, trackBatches(ids, 100, nil)...)
	r.logs.waitFor(t, retryLog, 2)
	if err := api.Up(); err != nil {
		t.Fatal(err)
	}
	requireAcked(t, awaitAcks(t, acks))
	requireDelivered(t, api, ids)
}

func TestStreamStanding503Outage(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	api.Outage503(true)
	r := startStream(t, map[string]any{"segment": segmentConf(api, nil)})

	ids := messageIDs("outage", 300)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	acks := r.pushAsync(ctx, trackBatches(ids, 100, nil)...)
	r.logs.waitFor(t, retryLog, 2)
	api.Outage503(false)
	requireAcked(t, awaitAcks(t, acks))
	requireDelivered(t, api, ids)
	if st := api.Stats(); st.Faulted[segmentapi.FaultOutage503] < 2 {
		t.Errorf("faults served = %v, want at least 2 outage 503s", st.Faulted)
	}
}

func TestStreamRetriesExhaustedNacks(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	// 500s come from Segment's API: it is up, but failing these requests.
	api.FailNext(100, http.StatusInternalServerError)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"max_retries": 2})})

	errs := r.push(t, trackBatches(messageIDs("exhausted", 10), 10, nil)...)
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "gave up after 3 attempts") {
		t.Fatalf("got %v, want a nack after 3 attempts", errs[0])
	}
	if st := api.Stats(); st.Requests != 3 || st.Accepted != 0 {
		t.Errorf("%d requests, %d calls accepted; want 3 and none", st.Requests, st.Accepted)
	}
}

func TestStreamPermanentErrorsToDeadLetter(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey, segmentapi.WithMaxCallBytes(2000))
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := startStream(t, map[string]any{"fallback": []any{
		map[string]any{"segment": segmentConf(api, nil)},
		map[string]any{
			"file":       map[string]any{"path": dlq, "codec": "lines"},
			"processors": []any{map[string]any{"mapping": "root = this\nroot.error = @fallback_error"}},
		},
	}})

	// Calls the output refuses itself: never sent, never retried.
	invalid := map[string]string{ // messageId -> what the reason must name
		"bad-noid":  "UserId",
		"bad-type":  `"bogus"`,
		"bad-field": `"colour"`,
		"bad-huge":  "32 KB",
	}
	requireAcked(t, r.push(t, service.MessageBatch{
		service.NewMessage([]byte(`{"type":"track","event":"E","messageId":"bad-noid"}`)),
		service.NewMessage([]byte(`{"type":"bogus","userId":"u1","messageId":"bad-type"}`)),
		service.NewMessage([]byte(`{"type":"track","event":"E","userId":"u1","messageId":"bad-field","colour":"red"}`)),
		service.NewMessage(trackCall("bad-huge", map[string]any{"pad": strings.Repeat("x", 40<<10)})),
	}))
	if st := api.Stats(); st.Requests != 0 {
		t.Errorf("invalid calls cost %d requests, want none", st.Requests)
	}

	// Calls Segment refuses (over the stand-in's 2,000 byte limit) among good ones.
	ids := messageIDs("good", 50)
	big := []string{"big-0", "big-1", "big-2"}
	batch := trackBatches(ids, 50, nil)[0]
	for i, id := range big {
		msg := service.NewMessage(trackCall(id, map[string]any{"pad": strings.Repeat("x", 3000)}))
		batch = append(batch[:i*20], append(service.MessageBatch{msg}, batch[i*20:]...)...)
	}
	requireAcked(t, r.push(t, batch))

	for _, id := range ids {
		if n := api.Count(id); n != 1 {
			t.Errorf("good call %s accepted %d times, want once", id, n)
		}
	}
	if got := api.UniqueMessageIDs(); got != len(ids) {
		t.Errorf("stand-in holds %d unique messageIds, want %d", got, len(ids))
	}
	if n := r.logs.count(retryLog); n != 0 {
		t.Errorf("%d permanent failures were retried", n)
	}

	reasons := map[string]string{}
	for _, d := range deadletter.Read(t, dlq, false) {
		reasons[d.ID] = d.Error
	}
	if len(reasons) != len(invalid)+len(big) {
		t.Errorf("dead letters: %v, want the %d invalid and %d big calls", reasons, len(invalid), len(big))
	}
	for id, names := range invalid {
		if reason := reasons[id]; !strings.Contains(reason, "permanent") || !strings.Contains(reason, names) {
			t.Errorf("dead letter %s: reason %q, want it to say permanent and name %s", id, reason, names)
		}
	}
	for _, id := range big {
		if reason := reasons[id]; !strings.Contains(reason, "permanent") || !strings.Contains(reason, "400") {
			t.Errorf("dead letter %s: reason %q, want it to say permanent and 400", id, reason)
		}
		if n := api.Count(id); n != 0 {
			t.Errorf("oversized call %s accepted %d times", id, n)
		}
	}
}

func TestStreamShutdownMidFlightNacks(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	if err := api.Down(); err != nil {
		t.Fatal(err)
	}
	r := startStream(t, map[string]any{"segment": segmentConf(api, nil)})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acks := r.pushAsync(ctx, trackBatches(messageIDs("stop", 10), 10, nil)...)
	r.logs.waitFor(t, retryLog, 1)
	summary := summaryOf(t, r) // stops the stream
	// The output must never ack the batch. Segment being down, the output
	// handed it back as not connected and waits in Connect; a forced stop
	// then leaves it unacknowledged (or nacked), which cancelling the
	// producer's context reveals.
	cancel()
	errs := awaitAcks(t, acks)
	if errs[0] == nil {
		t.Fatal("a batch Segment never accepted was acked at shutdown")
	}
	t.Logf("producer got: %v (pipeline nack delivered: %v)", errs[0], !errors.Is(errs[0], context.Canceled))
	if st := api.Stats(); st.Accepted != 0 {
		t.Errorf("stand-in accepted %d calls", st.Accepted)
	}
	// Nacked, not failed: the closing summary counts them apart.
	requireSummary(t, summary, "Segment output closed: 0 calls sent, 0 failed, 10 unconfirmed at shutdown.")
}

func TestStreamWriteKeyNeverLeaks(t *testing.T) {
	const key = "sk-TEST-very-secret-0001"
	basic := base64.StdEncoding.EncodeToString([]byte(key + ":"))
	api := segmentapi.StartT(t, key)
	api.FailNext(5, http.StatusUnauthorized)
	// Through a proxy that echoes the credentials in its 401 answers, as
	// some do, so that the key reaches the output in response bodies.
	proxy := echoingProxy(t, api)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"write_key": key, "endpoint": proxy})})

	// The refused key holds the calls: they are sent once it works, and
	// what the output says about the refusal reaches the logs.
	leak := messageIDs("leak", 50)
	requireAcked(t, r.push(t, trackBatches(leak, 10, nil)...))
	requireDelivered(t, api, leak)
	if r.logs.count("Authorization:") == 0 {
		t.Fatalf("the proxy's echo of the credentials is not in the logs, so the test proves nothing:\n%s", strings.Join(r.logs.all(), "\n"))
	}
	api.DropNext(2)
	ids := messageIDs("after", 10)
	requireAcked(t, r.push(t, trackBatches(ids, 10, nil)...))
	requireDelivered(t, api, append(leak, ids...))
	if r.logs.count(retryLog) < 2 {
		t.Fatalf("the dropped connections were not retried; logs:\n%s", strings.Join(r.logs.all(), "\n"))
	}

	for _, text := range r.logs.all() {
		if strings.Contains(text, key) || strings.Contains(text, basic) {
			t.Errorf("the write key leaked: %s", text)
		}
	}

	// The config as the CLI prints it.
	conf := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "input:\n  generate:\n    mapping: 'root = {}'\noutput:\n  segment:\n    write_key: " + key + "\n    endpoint: " + api.URL() + "\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	echoed := runCLI(t, "echo", conf)
	if strings.Contains(echoed, key) || strings.Contains(echoed, basic) || !strings.Contains(echoed, "!!!SECRET_SCRUBBED!!!") {
		t.Errorf("echo printed the write key unscrubbed:\n%s", echoed)
	}
}

func TestStreamBatchLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		pad  int
	}{
		{"400 byte calls", 300}, // the 500 KB limit splits requests
		{"small calls", 0},      // max_calls_per_request splits requests
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := segmentapi.StartT(t, streamWriteKey)
			r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{
				"max_calls_per_request": 2500,
				"batching":              map[string]any{"count": 3000, "period": "1s"},
			})})

			ids := messageIDs("limits", 3000)
			var props map[string]any
			if tc.pad > 0 {
				props = map[string]any{"pad": strings.Repeat("x", tc.pad)}
			}
			requireAcked(t, r.push(t, trackBatches(ids, 500, props)...))
			requireDelivered(t, api, ids)

			st := api.Stats()
			if st.MaxCallsInRequest > 2500 || st.MaxRequestBytes > segmentapi.DefaultMaxBatchBytes {
				t.Errorf("largest request: %d calls, %d bytes; want at most 2500 and %d", st.MaxCallsInRequest, st.MaxRequestBytes, segmentapi.DefaultMaxBatchBytes)
			}
			if st.SilentlyDropped != 0 || st.Rejected400 != 0 {
				t.Errorf("%d calls silently dropped, %d requests rejected", st.SilentlyDropped, st.Rejected400)
			}
			t.Logf("%d requests, largest %d calls / %d bytes", st.Requests, st.MaxCallsInRequest, st.MaxRequestBytes)
		})
	}
}

// A Retry-After of a minute holds the calls with /ready at 200 and nothing
// sent: before, only a debug line said so until the next attempt. Now a
// warning names the endpoint, the status and the wait, once for the
// requests that met it together; the calls are not acknowledged.
func TestStreamLongRetryAfterWarnsOnce(t *testing.T) {
	api := segmentapi.StartT(t, streamWriteKey)
	api.RateLimitNext(4, time.Minute)
	r := startStream(t, map[string]any{"segment": segmentConf(api, map[string]any{"max_calls_per_request": 10})})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acks := r.pushAsync(ctx, trackBatches(messageIDs("wait", 40), 10, nil)...)
	const warned = "asks to wait 1m0s before the next request (HTTP 429): the calls are held until then, not lost"
	r.logs.waitFor(t, warned, 1)
	for api.Stats().Faulted[segmentapi.FaultRateLimit] < 4 {
		runtime.Gosched() // the four requests in flight all met the wait
	}
	// The writes wait out the minute: only a forced stop ends them.
	r.stopped = true
	_ = r.strm.StopWithin(100 * time.Millisecond)
	cancel()
	for i, err := range awaitAcks(t, acks) {
		if err == nil {
			t.Errorf("batch %d acknowledged while Segment asked to wait", i)
		}
	}
	if n := r.logs.count(warned); n != 1 {
		t.Errorf("%d warnings, want 1; logs:\n%s", n, strings.Join(r.logs.all(), "\n"))
	}
	for _, l := range r.logs.all() {
		if strings.Contains(l, warned) && (!strings.HasPrefix(l, "WARN ") || !strings.Contains(l, api.URL())) {
			t.Errorf("want a warning naming %s: %s", api.URL(), l)
		}
	}
}
