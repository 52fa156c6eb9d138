package brazecurrents

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// One object cannot be read (its GET is refused: a key the credentials may
// not decrypt, say), in watch mode. Every pass tries it again, but only the
// first failure is logged at error (and its first attempt's at warn): with
// poll_interval 1m an error a pass is 60 an hour, for as long as it lasts.
// Later passes log at debug; once it is read, one info line says so.
func TestInputUnreadableObjectLoggedOncePerSpell(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := func(n int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: 70 + uint64(n), DateHour: at14(0).Add(-time.Hour), Offset: n}
	}
	good, bad := uploadFixture(t, b, spec(0)), uploadFixture(t, b, spec(1))
	badKey := fixtures.Key(spec(1))
	var refusing atomic.Bool
	refusing.Store(true)
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if refusing.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+badKey) {
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	settled := make(chan string, 16)
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 1m\nread_attempts: 2\nprogress_interval: 0s"
	r, err := connectClockRunWith(t, conf, at14(50), func(in *currentsInput) {
		in.objectSettled = func(key, outcome string) {
			if key == badKey {
				settled <- outcome
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	outcome := func(pass int, want string) {
		t.Helper()
		select {
		case got := <-settled:
			if got != want {
				t.Fatalf("pass %d: %s %s, want %s", pass, badKey, got, want)
			}
		case <-r.ctx.Done():
			t.Fatalf("pass %d never settled %s", pass, badKey)
		}
	}
	r.pass(0)
	r.got.waitFor(t, good)
	outcome(0, outcomeAbandoned)
	const failing = 5
	for i := 1; i < failing; i++ {
		r.poll(i, time.Minute)
		outcome(i, outcomeAbandoned)
	}
	logs := r.logs
	if n := logs.count("level=ERROR", badKey); n != 1 {
		t.Fatalf("%d errors name %s over %d failed passes, want one:\n%s", n, badKey, failing, logs)
	}
	if n := logs.count("level=WARN", badKey); n != 1 {
		t.Fatalf("%d warnings name %s over %d failed passes, want the first pass's first attempt's:\n%s", n, badKey, failing, logs)
	}
	if n := logs.count("level=DEBUG", badKey, "still cannot be read"); n != failing-1 {
		t.Fatalf("%d debug lines say %s still cannot be read, want %d:\n%s", n, badKey, failing-1, logs)
	}
	r.in.stats.mu.Lock()
	abandoned := r.in.stats.objectsAbandoned
	r.in.stats.mu.Unlock()
	if n := abandoned; n != failing { // braze_currents_objects_failed counts each too
		t.Fatalf("%d failed reads counted, want %d", n, failing)
	}

	refusing.Store(false)
	r.poll(failing, time.Minute)
	outcome(failing, outcomeDone)
	r.got.waitFor(t, bad)
	expectExactly(t, r.got, union(good, bad))
	if n := logs.count("level=INFO", badKey, "read at last, after failing for 5m0s"); n != 1 {
		t.Fatalf("%d info lines say %s was read at last, want one:\n%s", n, badKey, logs)
	}
	if n := logs.count("level=ERROR", badKey); n != 1 {
		t.Fatalf("%d errors name %s, want one:\n%s", n, badKey, logs)
	}
}
