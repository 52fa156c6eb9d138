package brazecurrents

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// One object of a partition can never be read (its GET is refused for
// good: a key the credentials may not decrypt, say). It is tried again at
// every pass, but it must not hold the partition's watermark back for ever:
// over months, the done keys above a stuck watermark would fill the
// checkpoint with every object since, and every poll would list every hour
// since again. Here 100 hours pass, one object an hour, polled hourly.
func TestInputUnreadableObjectKeepsCheckpointAndPollsBounded(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	start := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	spec := func(hour time.Time, n int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n}
	}
	bad := fixtures.Key(spec(start.Truncate(time.Hour), 9))
	uploadFixture(t, b, spec(start.Truncate(time.Hour), 9))
	listings := &listingLog{}
	tried := make(chan struct{}, 1)
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			listings.mu.Lock()
			listings.prefixes = append(listings.prefixes, r.URL.Query().Get("prefix"))
			listings.mu.Unlock()
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+bad) {
			select {
			case tried <- struct{}{}:
			default:
			}
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 1h\nread_attempts: 1\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 1000h"
	r := startClockRun(t, conf, start)
	r.pass(0)
	const hours = 100
	var lastPoll []string
	for i := 1; i <= hours; i++ {
		want := uploadFixture(t, b, spec(r.clock.Now().Truncate(time.Hour), 0))
		from := listings.count()
		r.poll(i, time.Hour)
		lastPoll = listings.since(from)
		r.got.waitFor(t, want)
	}
	r.waitCheckpointed(hours)
	doc, size := r.savedDoc(t)
	pd := doc.Partitions[r.partition(t, emailSend)]
	if pd == nil {
		t.Fatal("no partition in the checkpoint")
	}
	if len(pd.Done) > 8 {
		t.Errorf("after %d hours with one unreadable object the checkpoint (%d bytes) holds %d done keys: it grows with every object since", hours, size, len(pd.Done))
	}
	// The steady state: the levels above the partition, and the hours within
	// late_arrival (2h) of now, three levels each: 12 prefixes; and, as
	// each poll lists the partition's directory, the settled hours within
	// late_lookback (24h), three levels each: 72.
	if len(lastPoll) > 20+3*24 {
		t.Fatalf("after %d hours with one unreadable object a poll lists %d prefixes: every hour since it", hours, len(lastPoll))
	}
	// The object is still tried at every pass, and never counts as done.
	select {
	case <-tried:
	default:
	}
	r.poll(hours+1, time.Hour)
	select {
	case <-tried:
	case <-r.ctx.Done():
		t.Fatalf("the pass after %d hours did not try the unreadable object again", hours)
	}
	o, _ := r.in.conf.sel.objectAt(bad)
	if r.in.ckpt.isDone(o) {
		t.Fatalf("the unreadable object %s counts as done", bad)
	}
	t.Logf("after %d hours: checkpoint %d bytes, %d done keys, last poll listed %d prefixes", hours, size, len(pd.Done), len(lastPoll))
}

// A week of hourly partitions in watch mode, two objects an hour, polled
// hourly: the checkpoint and the input's state stay the size of the hours
// within late_arrival and late_lookback, whatever the history.
func TestInputWeekOfHoursKeepsStateBounded(t *testing.T) {
	dir := t.TempDir()
	conf := "url: file://" + dir + "\nwatch: true\npoll_interval: 1h\nmax_parallel_objects: 2\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 1000h"
	r := startClockRun(t, conf, time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC))
	r.pass(0)
	const hours = 7 * 24
	goroutines := 0
	for i := 1; i <= hours; i++ {
		if i == 25 {
			goroutines = runtime.NumGoroutine() // after a day: every reader and timer started
		}
		h := r.clock.Now().Truncate(time.Hour)
		want := union(hourFile(t, dir, emailSend, h, 0), hourFile(t, dir, emailSend, h, 1))
		r.poll(i, time.Hour)
		r.got.waitFor(t, want)
		r.got.mu.Lock() // the test's own record of events would grow instead
		clear(r.got.events)
		clear(r.got.meta)
		r.got.mu.Unlock()
	}
	r.waitCheckpointed(2 * hours)
	raw, _, _, err := r.in.ckpt.snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	c := r.in.ckpt
	c.mu.Lock()
	done, open := len(c.done[r.partition(t, emailSend)]), len(c.open[r.partition(t, emailSend)])
	c.mu.Unlock()
	r.in.mu.Lock()
	inFlight := len(r.in.inFlight)
	r.in.mu.Unlock()
	// Goroutines that are ending may linger a moment: wait, with a bound.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	after := runtime.NumGoroutine()
	// late_arrival (2h) keeps about three hours of keys: six objects;
	// late_lookback (24h) 24 hours of two 8-byte key sums, about 1 KB.
	if len(raw) > 3072 || done > 8 || open > 2 || inFlight > 2 || after > goroutines+5 {
		t.Fatalf("after %d hours: checkpoint %d bytes, %d done keys, %d open, %d in flight, %d goroutines (%d after a day)", hours, len(raw), done, open, inFlight, after, goroutines)
	}
	t.Logf("after %d hours: checkpoint %d bytes, %d done keys, %d open, %d in flight, %d goroutines (%d after a day)", hours, len(raw), done, open, inFlight, after, goroutines)
}

// The bucket input labels events_read with the event type of each object's
// key. A prefix holding types past Braze's known ones (include_event_types
// "*" on a prefix shared with other exports, or types Braze adds) must not
// make a series of each for the life of the process: past a bound they
// count as "other", as the count processor's do, and every event counts.
func TestInputEventsReadSeriesStayBounded(t *testing.T) {
	res, url := countResources(t)
	stats := newInputStats(res.Metrics(), res.Logger())
	const invented = 3 * maxOtherTypeLabels
	for i := range invented {
		stats.eventsRead(2, 0, 0, fmt.Sprintf("made.up.%d", i))
		stats.eventsRead(1, 0, 0, emailSend)
	}
	got := countsByType(t, url)["braze_currents_events_read"]
	if len(got) != maxOtherTypeLabels+2 || got[emailSend] != invented || got[otherEventType] != 2*(invented-maxOtherTypeLabels) {
		t.Fatalf("%d series of braze_currents_events_read (%s %v, other %v): want %d invented types, other and the known type",
			len(got), emailSend, got[emailSend], got[otherEventType], maxOtherTypeLabels)
	}
	stats.mu.Lock()
	byType := len(stats.eventsByType)
	stats.mu.Unlock()
	if byType > maxOtherTypeLabels+2 {
		t.Fatalf("the run summary keeps %d event types", byType)
	}
}
