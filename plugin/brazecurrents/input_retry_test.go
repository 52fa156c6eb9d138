package brazecurrents

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// retryRun is a one-pass run of one object whose GETs are refused while
// refuse says so, its read's retries watched, not driven: the test moves
// the clock.
type retryRun struct {
	*clockRun
	timers   *timersSet
	key      string
	want     map[string]bool
	waits    chan time.Duration // each retry's wait, its timer set
	settled  chan string        // the object's outcome
	mu       sync.Mutex
	getTimes []time.Time // on the clock, each GET of the object
}

// timersSet is the fake clock, noting how long each timer set on it runs.
type timersSet struct {
	*clockwork.FakeClock
	mu  sync.Mutex
	set map[time.Duration]bool
}

func (c *timersSet) NewTimer(d time.Duration) clockwork.Timer {
	c.mu.Lock()
	c.set[d] = true
	c.mu.Unlock()
	return c.FakeClock.NewTimer(d)
}

// newTimersSet watches the fake clock of a clockRun's input.
func newTimersSet(clock clockwork.Clock) *timersSet {
	return &timersSet{FakeClock: clock.(*clockwork.FakeClock), set: map[time.Duration]bool{}}
}

// has tells whether a timer of d was set.
func (c *timersSet) has(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set[d]
}

// startRetryRun starts a retryRun with the input's conf beyond its url,
// GET n of the object refused if refuse(n).
func startRetryRun(t *testing.T, conf string, refuse func(get int) bool) *retryRun {
	t.Helper()
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3, Seed: 90, DateHour: at14(0).Add(-time.Hour)}
	rr := &retryRun{want: uploadFixture(t, b, spec), key: fixtures.Key(spec),
		waits: make(chan time.Duration, 64), settled: make(chan string, 1)}
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+rr.key) {
			rr.mu.Lock()
			rr.getTimes = append(rr.getTimes, rr.timers.Now()) // set before the run starts
			n := len(rr.getTimes)
			rr.mu.Unlock()
			if refuse(n) {
				denyS3(w)
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	var err error
	rr.clockRun, err = connectClockRunWith(t, fmt.Sprintf("url: %q\n%s", proxied, conf), at14(50), func(in *currentsInput) {
		rr.timers = newTimersSet(in.clock)
		in.clock = rr.timers
		in.objectSettled = func(_, outcome string) { rr.settled <- outcome }
		in.readRetrying = func(_ string, wait time.Duration) { rr.waits <- wait }
	})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

const oneReader = "max_parallel_objects: 1\nprogress_interval: 0s"

func (rr *retryRun) nextWait(retry int) time.Duration {
	rr.t.Helper()
	select {
	case wait := <-rr.waits:
		return wait
	case <-rr.ctx.Done():
		rr.t.Fatalf("the read never waited to try again a %dth time", retry)
		return 0
	}
}

// settledAs waits for the object to settle, as want.
func (rr *retryRun) settledAs(want string) {
	rr.t.Helper()
	select {
	case got := <-rr.settled:
		if got != want {
			rr.t.Fatalf("the object settled %s, want %s", got, want)
		}
	case <-rr.ctx.Done():
		rr.t.Fatalf("the object never settled, want %s", want)
	}
}

func (rr *retryRun) gets() []time.Time {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]time.Time(nil), rr.getTimes...)
}

// An object refused 4 times is read at its 5th attempt (read_attempts'
// default), after waits on the input's clock of about 1, 1.5, 2.25 and
// 3.4 s, each ±50 % (the backoff's randomisation), about 8 s in all (what
// input_notify_delay.go counts a delivery): before, they were on the wall
// clock, so tests of retries took real seconds and the schedule went
// untested.
func TestInputReadRetriesOnTheClock(t *testing.T) {
	rr := startRetryRun(t, oneReader, func(get int) bool { return get <= 4 })
	var waits []time.Duration
	interval := time.Second
	for retry := range 4 {
		wait := rr.nextWait(retry + 1)
		if wait < interval/2 || wait > interval*3/2 {
			t.Fatalf("retry %d after %v, want %v ±50%%", retry+1, wait, interval)
		}
		if !rr.timers.has(wait) {
			t.Fatalf("retry %d waits %v, but on no timer of the input's clock", retry+1, wait)
		}
		waits = append(waits, wait)
		interval = interval * 3 / 2
		// Not tried again a nanosecond early.
		rr.clock.Advance(wait - time.Nanosecond)
		rr.clock.Advance(time.Nanosecond)
	}
	rr.settledAs(outcomeDone)
	rr.got.waitFor(t, rr.want)
	expectExactly(t, rr.got, rr.want)
	gets := rr.gets()
	if len(gets) != 5 {
		t.Fatalf("%d GETs of the object, want 5", len(gets))
	}
	for i, wait := range waits {
		if d := gets[i+1].Sub(gets[i]); d != wait {
			t.Fatalf("GET %d came %v after the one before, on the clock, want its wait, %v", i+2, d, wait)
		}
		if n := rr.logs.count("level=WARN", fmt.Sprintf("failed (attempt %d of 5), retrying in %v from event 0", i+1, wait)); n != 1 {
			t.Fatalf("%d warnings for attempt %d, want one saying it is retried in %v:\n%s", n, i+1, wait, rr.logs)
		}
	}
}

// Stopping the input while a read waits to try again ends the read at
// once, without the clock moving: left for the next run, tried once.
func TestInputStopEndsAReadRetryWait(t *testing.T) {
	rr := startRetryRun(t, oneReader, func(int) bool { return true })
	rr.nextWait(1)
	at := rr.clock.Now()
	if err := rr.in.Close(rr.ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rr.in.stopped:
	default:
		t.Fatal("Close returned with the read still waiting")
	}
	select {
	case outcome := <-rr.settled:
		if outcome != outcomeAbandoned {
			t.Fatalf("the object %s at the stop, want abandoned", outcome)
		}
	default:
		t.Fatal("the object was not settled once Close returned")
	}
	if n := len(rr.gets()); n != 1 || !rr.clock.Now().Equal(at) {
		t.Fatalf("%d GETs and the clock moved by %v, want one GET and no time", n, rr.clock.Since(at))
	}
}

// However many read_attempts, the waits between them stay at 30 s (±50 %)
// once grown there: before, the backoff gave up after 15 minutes of a read
// (its default MaxElapsedTime), and every attempt after that came at once
// ("retrying in -1ns"), as they did after a read that took 15 minutes
// (events waiting for the pipeline) and then failed.
func TestInputReadRetriesKeepTheirWaitPastFifteenMinutes(t *testing.T) {
	const attempts = 40 // about 16 minutes of waits
	rr := startRetryRun(t, fmt.Sprintf("read_attempts: %d\n%s", attempts, oneReader), func(int) bool { return true })
	interval, start := time.Second, rr.timers.Now()
	for retry := 1; retry < attempts; retry++ {
		wait := rr.nextWait(retry)
		if wait < interval/2 || wait > interval*3/2 {
			t.Fatalf("retry %d, %v into the read, after %v, want %v ±50%%", retry, rr.clock.Since(start), wait, interval)
		}
		interval = min(interval*3/2, 30*time.Second)
		rr.clock.Advance(wait)
	}
	rr.settledAs(outcomeAbandoned)
	if n := len(rr.gets()); n != attempts {
		t.Fatalf("%d GETs, want %d", n, attempts)
	}
}
