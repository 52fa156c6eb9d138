package segmentapi_test

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// outcome is what one request got: an HTTP status, or 0 for a dropped
// connection.
type outcome int

const dropped outcome = 0

// stormRun posts n one-call requests in sequence, ids prefix-0 ..., and
// returns each one's outcome.
func stormRun(t *testing.T, s *segmentapi.Server, c *http.Client, prefix string, n int) []outcome {
	t.Helper()
	got := make([]outcome, n)
	for i := range got {
		a, err := post(c, s.URL()+"/v1/batch", writeKey, tracks(fmt.Sprint(prefix, "-", i)))
		if err != nil {
			continue // dropped
		}
		got[i] = outcome(a.status)
		if a.status == http.StatusTooManyRequests {
			if ra := a.header.Get("Retry-After"); ra != "2" {
				t.Fatalf("request %d: Retry-After = %q, want 2 (ceil of 1.5s)", i, ra)
			}
		}
	}
	return got
}

func tally(outs []outcome) map[outcome]int {
	m := map[outcome]int{}
	for _, o := range outs {
		m[o]++
	}
	return m
}

var stormSpec = segmentapi.StormSpec{Fail503: 0.15, RateLimit429: 0.10, RetryAfter: 1500 * time.Millisecond, Drop: 0.05, Seed: 42}

// The storm's answers are drawn independently per request with the given
// rates, reproducibly for a seed; dropped requests record nothing.
func TestStorm(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	if err := s.Storm(stormSpec); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	outs := stormRun(t, s, c, "st", n)

	// Exact counts for seed 42: 15.55%, 10.3%, 4.25% and 69.9% of 2,000,
	// for rates of 15%, 10%, 5% and 70%.
	want := map[outcome]int{503: 311, 429: 206, dropped: 85, 200: 1398}
	if got := tally(outs); !maps.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v for seed %d", got, want, stormSpec.Seed)
	}
	st := s.Stats()
	if st.Faulted[segmentapi.FaultStorm503] != want[503] || st.Faulted[segmentapi.FaultStorm429] != want[429] ||
		st.Faulted[segmentapi.FaultStormDrop] != want[dropped] || st.Requests != n {
		t.Fatalf("stats %+v", st)
	}
	// Only the answered 200s were recorded: not a call from a dropped request.
	if st.Accepted != want[200] || s.UniqueMessageIDs() != want[200] || s.Duplicates() != 0 {
		t.Fatalf("accepted %d (%d unique), want %d", st.Accepted, s.UniqueMessageIDs(), want[200])
	}
	for i, o := range outs {
		if n := s.Count(fmt.Sprint("st-", i)); (o == 200) != (n == 1) || n > 1 {
			t.Fatalf("request %d got %d, yet its call was recorded %d times", i, o, n)
		}
	}

	// The same seed replays the same answers; queued faults come first and
	// draw nothing from the storm.
	if err := s.Storm(stormSpec); err != nil {
		t.Fatal(err)
	}
	s.FailNext(2, http.StatusInternalServerError)
	replay := stormRun(t, s, c, "replay", 102)
	if !slices.Equal(replay[:2], []outcome{500, 500}) || !slices.Equal(replay[2:], outs[:100]) {
		t.Fatalf("replay with seed %d: %v, want 500, 500 then %v", stormSpec.Seed, replay, outs[:100])
	}

	// A zero spec stops the storm.
	if err := s.Storm(segmentapi.StormSpec{}); err != nil {
		t.Fatal(err)
	}
	if got := tally(stormRun(t, s, c, "calm", 50)); got[200] != 50 {
		t.Fatalf("after the storm: %v, want 50 200s", got)
	}
}

func TestStormRefusesBadSpecs(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	for _, spec := range []segmentapi.StormSpec{
		{Fail503: 0.6, RateLimit429: 0.3, Drop: 0.2},
		{Drop: -0.1},
		{Fail503: math.NaN()},
		{RateLimit429: 0.1, RetryAfter: -time.Second},
	} {
		if err := s.Storm(spec); err == nil {
			t.Errorf("Storm(%+v) accepted", spec)
		}
	}
}

// A revoked key answers 401 with a JSON error on every path, records
// nothing, and works again once restored.
func TestRevokeKey(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.RevokeKey(true)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("r1", "r2")), http.StatusUnauthorized, "revoked", -1)
	single := []byte(`{"event":"E","userId":"u1","messageId":"r3"}`)
	expect(t, mustPost(t, c, s.URL()+"/v1/track", writeKey, single), http.StatusUnauthorized, "revoked", -1)
	s.Reset() // keeps the key revoked
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("r1")), http.StatusUnauthorized, "revoked", -1)
	st := s.Stats()
	if st.Unauthorized != 1 || st.Faulted[segmentapi.FaultRevoked] != 1 || st.Accepted != 0 || s.UniqueMessageIDs() != 0 {
		t.Fatalf("while revoked: stats %+v", st)
	}

	s.RevokeKey(false)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("r1", "r2")), http.StatusOK, "", -1)
	if s.Count("r1") != 1 || s.Count("r2") != 1 || s.Count("r3") != 0 {
		t.Fatalf("after restoring the key: accepted %v", s.Accepted())
	}
}

// The control API starts and stops a storm and revokes the key.
func TestControlStormAndRevoke(t *testing.T) {
	url, _ := runCommand(t, "-write-key", writeKey)
	seg, ctl := newClient(t), newClient(t)
	statusAfter := func(spec string) int {
		t.Helper()
		if code := control(t, ctl, "POST", url+"/_control/fault", spec, nil); code != http.StatusOK {
			t.Fatalf("fault %s: %d", spec, code)
		}
		return mustPost(t, seg, url+"/v1/batch", writeKey, tracks("c1")).status
	}
	if got := statusAfter(`{"kind":"storm","fail503":1,"seed":7}`); got != http.StatusServiceUnavailable {
		t.Fatalf("storm of 503s: %d", got)
	}
	if got := statusAfter(`{"kind":"storm","ratelimit429":1,"retry_after_ms":1000}`); got != http.StatusTooManyRequests {
		t.Fatalf("storm of 429s: %d", got)
	}
	if got := statusAfter(`{"kind":"storm"}`); got != http.StatusOK {
		t.Fatalf("storm stopped: %d", got)
	}
	if got := statusAfter(`{"kind":"revoked","on":true}`); got != http.StatusUnauthorized {
		t.Fatalf("revoked: %d", got)
	}
	if got := statusAfter(`{"kind":"revoked","on":false}`); got != http.StatusOK {
		t.Fatalf("restored: %d", got)
	}
	var e map[string]any
	if code := control(t, ctl, "POST", url+"/_control/fault", `{"kind":"storm","drop":2}`, &e); code != http.StatusBadRequest || e["error"] == "" {
		t.Fatalf("bad storm: %d %v, want 400 with an error", code, e)
	}
}
