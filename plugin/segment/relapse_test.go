package segment_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestProbeTakenButCallsRefusedKeepsThePace puts something in front of
// Segment that answers the output's probe (an empty batch) but refuses
// every request with calls in it: a proxy or WAF that lets small bodies
// through (probe 200, calls 403), or a revoked key that Segment reads only
// past the batch (probe 400, which the output takes as "key taken", calls
// 401). The calls are held, never acked or dead-lettered, and the probes
// keep the backoff's pace across the relapses: before, each relapse started
// a new outage whose first probe went at once, thousands of requests and
// error lines a second. The outage is logged once: the error, the probe
// taken, the calls refused again. Once the front lets the calls through,
// every one is delivered.
func TestProbeTakenButCallsRefusedKeepsThePace(t *testing.T) {
	for _, c := range []struct {
		name           string
		probe, refusal int
	}{
		{"probe 200, calls 403", http.StatusOK, http.StatusForbidden},
		{"probe 400, calls 401", http.StatusBadRequest, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) { probeTakenCallsRefused(t, c.probe, c.refusal) })
	}
}

func probeTakenCallsRefused(t *testing.T, probeStatus, refusal int) {
	const probes, batches = 6, 3
	const initial = 100 * time.Millisecond // the shortest backoff wait is half of it
	api := segmentapi.StartT(t, streamWriteKey)
	front := newRefusingFront(t, api, probeStatus, refusal, probes)
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := startStream(t, map[string]any{"fallback": []any{
		map[string]any{"segment": segmentConf(api, map[string]any{
			"endpoint": front.url,
			"backoff":  map[string]any{"initial_interval": initial.String(), "max_interval": "200ms"},
		})},
		map[string]any{"file": map[string]any{"path": dlq, "codec": "lines"}},
	}})

	ids := messageIDs("relapse", 10*batches)
	acks := r.pushAsync(context.Background(), trackBatches(ids, 10, nil)...)
	select {
	case <-front.enough:
	case <-time.After(waitLimit):
		t.Fatalf("only %d probes in %v", len(front.probeTimes()), waitLimit)
	}
	times := front.probeTimes()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < initial/2 {
			t.Fatalf("probe %d came %v after the one before, under the backoff's shortest wait (%v): %d requests with calls refused by then",
				i+1, gap, initial/2, front.refused.Load())
		}
	}
	// After each probe taken the held batches go again: up to one request
	// each, as they come back to the output one by one.
	if n := front.refused.Load(); n < probes-1 || n > batches*(probes+1) {
		t.Errorf("%d requests with calls refused for %d probes: want 1 to %d after each probe taken", n, len(times), batches)
	}
	status := "HTTP " + strconv.Itoa(refusal)
	for substr, want := range map[string]int{
		"ERROR segment":                   1,
		status:                            2, // the error, and the warning of the relapse quoting it
		"but not the calls that followed": 1,
		"again: sending":                  1,
	} {
		if got := r.logs.count(substr); got != want {
			t.Errorf("%d log lines hold %q, want %d; logs:\n%s", got, substr, want, strings.Join(r.logs.all(), "\n"))
		}
	}
	select {
	case errs := <-acks:
		t.Fatalf("batches settled while every call was refused: %v", errs)
	default:
	}
	if dl := deadletter.Read(t, dlq, false); len(dl) != 0 {
		t.Fatalf("%d calls dead-lettered while their key or endpoint was refused, e.g. %v", len(dl), dl[0])
	}

	front.refusing.Store(false)
	requireAcked(t, awaitAcks(t, acks))
	requireDelivered(t, api, ids)
	if dl := deadletter.Read(t, dlq, false); len(dl) != 0 {
		t.Fatalf("%d calls dead-lettered, e.g. %v", len(dl), dl[0])
	}
}

// refusingFront stands before api: while refusing, it answers an empty
// batch with probeStatus and any other request with refusal; then it
// forwards everything to api.
type refusingFront struct {
	url      string
	refusing atomic.Bool
	refused  atomic.Int64
	enough   chan struct{} // closed at the probes'th probe
	mu       sync.Mutex
	probes   []time.Time
}

func newRefusingFront(t *testing.T, api *segmentapi.Server, probeStatus, refusal, probes int) *refusingFront {
	t.Helper()
	target, err := url.Parse(api.URL())
	if err != nil {
		t.Fatal(err)
	}
	f := &refusingFront{enough: make(chan struct{})}
	f.refusing.Store(true)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if !f.refusing.Load() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !bytes.Equal(body, []byte(`{"batch":[]}`)) {
			f.refused.Add(1)
			w.WriteHeader(refusal)
			_, _ = io.WriteString(w, `{"error":"refused by policy"}`)
			return
		}
		f.mu.Lock()
		if f.probes = append(f.probes, time.Now()); len(f.probes) == probes {
			close(f.enough)
		}
		f.mu.Unlock()
		w.WriteHeader(probeStatus)
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *refusingFront) probeTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.probes...)
}
