package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// Segment is unreachable once requests have been failing, none accepted,
// for unreachable_after on the output's clock: these tests move a fake
// clock as the stand-in answers, so each request "takes" a set time.

// twoAttemptsOutput is an output that gives up after 2 attempts, with
// unreachable_after 30s on a fake clock.
func twoAttemptsOutput(t *testing.T) (*segmentapi.Server, *output, *clockwork.FakeClock) {
	srv := segmentapi.StartT(t, testKey)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_retries: 1, unreachable_after: 30s, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, srv.URL()))
	clock := clockwork.NewFakeClock()
	out.s.clock = clock
	return srv, out, clock
}

// outageOutput is twoAttemptsOutput with Segment down (503), each request
// taking d on the output's clock.
func outageOutput(t *testing.T, d time.Duration) (*segmentapi.Server, *output) {
	srv, out, clock := twoAttemptsOutput(t)
	srv.OnRequest(func(*http.Request, []segmentapi.Call) { clock.Advance(d) })
	srv.Outage503(true)
	return srv, out
}

// requireGaveUp writes a batch whose calls must fail after 2 attempts.
func requireGaveUp(t *testing.T, out *output) {
	t.Helper()
	batch := trackBatch(3, 0, "x")
	for _, err := range batchErrors(batch, out.WriteBatch(context.Background(), batch)) {
		if err == nil || !strings.Contains(err.Error(), "gave up after 2 attempts") {
			t.Fatalf("error %v, want a transient failure after 2 attempts", err)
		}
	}
}

// A failing spell ends with the requests that were failing, however they
// end: an idle hour after a request gave up (max_retries), one 503 is one
// 503, not an hour of Segment accepting nothing.
func TestUnreachableForgetsAFailingSpellThatEnded(t *testing.T) {
	srv, out, clock := twoAttemptsOutput(t)
	srv.FailNext(2, http.StatusServiceUnavailable)
	requireGaveUp(t, out)
	clock.Advance(time.Hour) // idle
	srv.FailNext(1, http.StatusServiceUnavailable)
	if err := out.WriteBatch(context.Background(), trackBatch(3, 3, "x")); err != nil {
		t.Fatalf("one 503 an idle hour after a request gave up: %v, want the calls retried and accepted", err)
	}
}

// Requests that give up one after another, none accepted, add up: their
// failing time counts, so that an outage takes the output down (and holds
// the calls) even when no one request fails for unreachable_after.
func TestUnreachableAddsUpFailingRequests(t *testing.T) {
	_, out := outageOutput(t, 20*time.Second)
	requireGaveUp(t, out) // after 20 s of failing
	if err := out.WriteBatch(context.Background(), trackBatch(3, 3, "x")); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("a second request failing after 20 s of failures: %v, want not connected", err)
	}
}

// Every spell of failures counts, not only the last: requests that give up
// after 10 s each take the output down at the third (30 s of failures), not
// never because each spell alone stays under unreachable_after.
func TestUnreachableAddsUpEverySpell(t *testing.T) {
	_, out := outageOutput(t, 10*time.Second)
	requireGaveUp(t, out) // 10 s failing
	requireGaveUp(t, out) // 20 s, in two spells
	if err := out.WriteBatch(context.Background(), trackBatch(3, 3, "x")); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("a third request failing after 20 s of failures in two spells: %v, want not connected", err)
	}
}

// An accepted request ends the count: failures before it do not add to the
// failures after it.
func TestUnreachableCountRestartsWhenARequestIsAccepted(t *testing.T) {
	srv, out := outageOutput(t, 20*time.Second)
	requireGaveUp(t, out) // 20 s failing
	srv.Outage503(false)
	if err := out.WriteBatch(context.Background(), trackBatch(3, 3, "x")); err != nil {
		t.Fatal(err)
	}
	srv.Outage503(true)
	requireGaveUp(t, out) // 20 s failing since the acceptance
}

// Every request after a 429 or 503 with Retry-After comes no sooner than
// it asked, down or not: the retry that found Segment unreachable went
// down at once, and Connect's probe (and, when a probe was answered 429,
// the held batch) went straight away, whatever the last answer asked.
func TestRetryAfterIsHonouredAcrossTheDownState(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(status), func(t *testing.T) { checkRetryAfterAcrossTheDownState(t, status) })
	}
}

// checkRetryAfterAcrossTheDownState answers the batch's request, its retry
// and the first probe with status and Retry-After: 1, then lets requests
// through to the stand-in.
func checkRetryAfterAcrossTheDownState(t *testing.T, status int) {
	const limited = 3
	api, forward := standInBehindAFront(t)
	var mu sync.Mutex
	var answered []time.Time // when each answer was about to be written
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		answered = append(answered, time.Now())
		n := len(answered)
		mu.Unlock()
		if n <= limited {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, unreachable_after: 1ms, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, front.URL))
	batch := trackBatch(3, 0, "x")
	if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write while answered %d for longer than unreachable_after: %v, want not connected", status, err)
	}
	if err := out.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil || api.UniqueMessageIDs() != 3 {
		t.Fatalf("write once Segment takes calls: %v, %d accepted", err, api.UniqueMessageIDs())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(answered) < limited+1 {
		t.Fatalf("%d requests, want %d answered %d and at least 1 more", len(answered), limited, status)
	}
	for i := 1; i <= limited; i++ {
		if gap := answered[i].Sub(answered[i-1]); gap < time.Second {
			t.Errorf("request %d came %v after a %d asking for 1s", i+1, gap.Round(time.Millisecond), status)
		}
	}
}
