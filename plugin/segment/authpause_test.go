package segment_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestAuthFailurePausesAndDeliversLater revokes the write key (every request
// answers 401) while calls arrive, some in batches of several, some alone.
// A 401 means the key is wrong for every call, so the output must hold them:
// none acked, none dead-lettered, however long it lasts (here, until the
// stand-in has refused 20 requests). Once the key works again every call is
// delivered and acked, and nothing was dead-lettered. The output logs an
// error naming the endpoint, never the key.
//
// The refusals come as fast as the output probes: segmentConf's backoff is
// 10 to 100 ms. If the output's auth probe gets a setting of its own, set
// it as short here.
func TestAuthFailurePausesAndDeliversLater(t *testing.T) {
	const key = "sk-TEST-revoked-key-0002"
	const refusals = 20
	basic := base64.StdEncoding.EncodeToString([]byte(key + ":"))
	api := segmentapi.StartT(t, key)
	api.RevokeKey(true)
	enough := make(chan struct{})
	var once sync.Once
	api.OnRequest(func(*http.Request, []segmentapi.Call) {
		if api.Stats().Faulted[segmentapi.FaultRevoked] >= refusals {
			once.Do(func() { close(enough) })
		}
	})
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := startStream(t, map[string]any{"fallback": []any{
		map[string]any{"segment": segmentConf(api, map[string]any{"write_key": key})},
		map[string]any{
			"file":       map[string]any{"path": dlq, "codec": "lines"},
			"processors": []any{map[string]any{"mapping": "root = this\nroot.error = @fallback_error"}},
		},
	}})

	ids := messageIDs("paused", 60)
	batches := append(trackBatches(ids[:40], 10, nil), trackBatches(ids[40:], 1, nil)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	var acked atomic.Int64
	errs := make([]error, len(batches))
	done := make(chan struct{})
	go func() {
		defer close(done)
		pushConcurrently(ctx, r.send, len(batches), len(batches),
			func(i int) service.MessageBatch { return batches[i] },
			func(i int, err error) {
				errs[i] = err
				if err == nil {
					acked.Add(1)
				}
			})
	}()

	select {
	case <-enough:
	case <-done:
		t.Fatalf("every batch got its result while the key was revoked (%d acked, %d calls dead-lettered), after %d refusals",
			acked.Load(), len(deadletter.Read(t, dlq, false)), api.Stats().Faulted[segmentapi.FaultRevoked])
	case <-time.After(waitLimit):
		t.Fatalf("the stand-in refused only %d requests in %v", api.Stats().Faulted[segmentapi.FaultRevoked], waitLimit)
	}
	if n := acked.Load(); n != 0 {
		t.Errorf("%d batches acked while the key was revoked", n)
	}
	if dl := deadletter.Read(t, dlq, false); len(dl) != 0 {
		t.Errorf("%d calls dead-lettered for an auth failure, e.g. %v", len(dl), dl)
	}
	endpoint := strings.TrimPrefix(api.URL(), "http://")
	if !slices.ContainsFunc(r.logs.all(), func(l string) bool {
		return strings.Contains(l, "ERROR") && strings.Contains(l, endpoint) && strings.Contains(l, "401")
	}) {
		t.Errorf("no error logged naming the endpoint %s and the 401; logs:\n%s", endpoint, strings.Join(r.logs.all(), "\n"))
	}

	api.RevokeKey(false)
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("%d of %d batches acked %v after the key was restored", acked.Load(), len(batches), waitLimit)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch %d: %v", i, err)
		}
	}
	requireDelivered(t, api, ids)
	if d := api.Duplicates(); d != 0 {
		t.Errorf("%d duplicates: no refused request records anything", d)
	}
	if dl := deadletter.Read(t, dlq, false); len(dl) != 0 {
		t.Errorf("%d calls dead-lettered, e.g. %v", len(dl), dl)
	}
	for _, line := range r.logs.all() {
		if strings.Contains(line, key) || strings.Contains(line, basic) {
			t.Errorf("the write key leaked: %s", line)
		}
	}
}
