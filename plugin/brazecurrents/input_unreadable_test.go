package brazecurrents

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	var waited atomic.Int64 // the retries' waits, on the clock
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 1m\nread_attempts: 2\nprogress_interval: 0s"
	r, err := connectClockRunWith(t, conf, at14(50), func(in *currentsInput) {
		in.objectSettled = func(key, outcome string) {
			if key == badKey {
				settled <- outcome
			}
		}
		advance := in.readRetrying // moves the clock on by the wait
		in.readRetrying = func(key string, wait time.Duration) {
			waited.Add(int64(wait))
			advance(key, wait)
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
	firstWait := time.Duration(waited.Load()) // before the spell began
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
	// Five polls a minute apart, and the retries' waits after the first.
	spell := (5*time.Minute + time.Duration(waited.Load()) - firstWait).Round(time.Second)
	if n := logs.count("level=INFO", badKey, "read at last, after failing for "+spell.String()); n != 1 {
		t.Fatalf("%d info lines say %s was read at last, want one:\n%s", n, badKey, logs)
	}
	if n := logs.count("level=ERROR", badKey); n != 1 {
		t.Fatalf("%d errors name %s, want one:\n%s", n, badKey, logs)
	}
}

// Objects that cannot be read (a GET denied on one event type: a bucket
// policy, a KMS key the role may not use) are tried again at every pass,
// but never ahead of new objects: before, each pass first tried every one
// of them, with its backoff, and only then listed, so a new object of any
// type waited behind all of them, longer at each pass as they accumulated.
// Here, at the pass after they failed, the retries' GETs wait in the proxy
// until the new object's GET comes: were every reader held by a retry, the
// new object could not be read first, and the proxy lets them go, noting it.
func TestInputFailedObjectsDoNotHoldBackNewObjects(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := func(eventType string, hour time.Time, n int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n}
	}
	thirteen := at14(0).Add(-time.Hour)
	const bad, readers = 8, 2
	denied := map[string]bool{}
	for n := range bad {
		uploadFixture(t, b, spec(uninstall, thirteen, n))
		denied[fixtures.Key(spec(uninstall, thirteen, n))] = true
	}
	good := uploadFixture(t, b, spec(emailSend, thirteen, 0))
	freshKey := fixtures.Key(spec(emailSend, at14(0), 1))
	var (
		holding  atomic.Bool           // set once the denied objects failed a first time
		freshGot = make(chan struct{}) // closed at the new object's GET
		release  = make(chan struct{}) // closed once every reader waits on a retry
		mu       sync.Mutex
		waiting  int
		heldBack bool
	)
	gotFresh := sync.OnceFunc(func() { close(freshGot) })
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+freshKey) {
			gotFresh()
		}
		_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/") // /bucket/key
		if r.Method != http.MethodGet || !denied[key] {
			forward.ServeHTTP(w, r)
			return
		}
		if holding.Load() {
			mu.Lock()
			if waiting++; waiting == readers && !heldBack {
				select {
				case <-freshGot:
					// Retries after the new object's GET pass at once,
					// but two may still overlap here: no sign of it.
				default:
					heldBack = true
					close(release)
				}
			}
			mu.Unlock()
			select {
			case <-freshGot:
			case <-release:
			case <-r.Context().Done():
			}
			mu.Lock()
			waiting--
			mu.Unlock()
		}
		denyS3(w)
	})
	failed := make(chan string, 4*bad)
	conf := fmt.Sprintf("url: %q\nwatch: true\npoll_interval: 1m\nread_attempts: 1\nmax_parallel_objects: %d\nprogress_interval: 0s", proxied, readers)
	r, err := connectClockRunWith(t, conf, at14(50), func(in *currentsInput) {
		in.objectSettled = func(key, outcome string) {
			if outcome == outcomeAbandoned {
				failed <- key
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFailed := func(pass int) {
		t.Helper()
		for range bad {
			select {
			case <-failed:
			case <-r.ctx.Done():
				t.Fatalf("pass %d: the %d unreadable objects did not all fail", pass, bad)
			}
		}
	}
	r.pass(0)
	r.got.waitFor(t, good)
	waitFailed(0)

	// A new object of another type lands; the next poll is due.
	holding.Store(true)
	fresh := uploadFixture(t, b, spec(emailSend, at14(0), 1))
	r.poll(1, time.Minute)
	r.got.waitFor(t, fresh)
	waitFailed(1) // tried again all the same
	mu.Lock()
	defer mu.Unlock()
	if heldBack {
		t.Fatalf("every reader was held by a retry of the %d unreadable objects before the new object was read", bad)
	}
	if n := len(r.in.ckpt.retries()); n != bad {
		t.Fatalf("%d objects left to try again, want the %d unreadable ones", n, bad)
	}
}

// An object that could not be read is tried once a pass, with its
// read_attempts: before, a pass tried it by its key, then again when its
// listing met it (it counted as neither done nor in flight), doubling its
// GETs, its backoff and the objects "left for a later pass". Here a
// restart finds it failed in the checkpoint; a listing waits while it is
// read, so that the listing meets it once that read failed.
func TestInputFailedObjectTriedOnceAPass(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: 5, DateHour: at14(0).Add(-time.Hour)}
	uploadFixture(t, b, spec)
	key := fixtures.Key(spec)
	var (
		gets    atomic.Int32
		reading atomic.Pointer[currentsInput] // the run whose reads of key a listing waits for
		mu      sync.Mutex
		settled = make(chan struct{}) // closed, and replaced, as a read ends
	)
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+key) {
			gets.Add(1)
			denyS3(w)
			return
		}
		if in := reading.Load(); in != nil && r.URL.Query().Has("list-type") {
			mu.Lock()
			next := settled // before the look: a read that ends after it closes next
			mu.Unlock()
			in.mu.Lock()
			busy := in.inFlight[key]
			in.mu.Unlock()
			if busy {
				select {
				case <-next:
				case <-r.Context().Done():
				}
			}
		}
		forward.ServeHTTP(w, r)
	})
	const attempts = 2
	conf := fmt.Sprintf("url: %q\nread_attempts: %d\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true", proxied, attempts)
	run := func(run int) {
		t.Helper()
		gets.Store(0)
		r, err := connectClockRunWith(t, conf, at14(50+run), func(in *currentsInput) {
			reading.Store(in)
			in.objectSettled = func(string, string) { // after the object left inFlight
				mu.Lock()
				close(settled)
				settled = make(chan struct{})
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.done: // a one-pass run: it ends once every read ended
		case <-r.ctx.Done():
			t.Fatalf("run %d never ended", run)
		}
		if n := gets.Load(); n != attempts {
			t.Fatalf("run %d, one pass with read_attempts %d, sent %d GETs of the unreadable object", run, attempts, n)
		}
		r.close()
	}
	run(1)
	run(2) // the object is in the checkpoint's failed keys
}
