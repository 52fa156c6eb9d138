package brazecurrents

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// The walker looks inside a date= directory whose name is not the hour
// layout it knows, and the first pass reads the objects there. A watch poll
// must list them again: here Braze writes one more, Hive-style, under
// date=<day>/hour=<HH>/, after the partition got a watermark and while the
// objects beside it let the watermark pass their hours.
func TestInputWatchListsADateLayoutItDoesNotParse(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nlate_arrival: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s", dir)
	thirteen := at14(0).Add(-time.Hour)
	odd, _ := dayHourFile(t, dir, emailSend, thirteen, 1)
	want := union(hourFile(t, dir, emailSend, thirteen, 0), odd)
	r := startClockRun(t, conf, at14(50))
	r.pass(0)
	r.got.waitFor(t, want)

	onTime := hourFile(t, dir, emailSend, at14(0), 2)
	later, key := dayHourFile(t, dir, emailSend, at14(0), 3)
	r.poll(1, time.Minute)
	r.poll(2, time.Minute)
	o, _ := r.in.conf.sel.objectAt(key)
	r.in.mu.Lock()
	listed := r.in.inFlight[key] || r.in.ckpt.isDone(o)
	r.in.mu.Unlock()
	if !listed {
		t.Fatalf("two polls never listed %s", key)
	}
	r.got.waitFor(t, union(want, onTime, later))
	expectExactly(t, r.got, union(want, onTime, later))
}

// dayHourFile writes hourFile's object with its date= segment split
// Hive-style into date=<day>/hour=<HH>/, and returns its key too.
func dayHourFile(t *testing.T, dir, eventType string, hour time.Time, n int) (map[string]bool, string) {
	t.Helper()
	spec := fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 5, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n}
	key := strings.Replace(fixtures.Key(spec), "/date="+hour.Format(DateHourLayout)+"/", "/date="+hour.Format("2006-01-02")+"/hour="+hour.Format("15")+"/", 1)
	return writeFixtureAt(t, dir, key, spec), key
}

// Braze may change a partition's layout at any hour. A partition listed hour
// by hour has its directory listed again after relearnLayout, so an object
// written in a layout the walker does not parse (here Hive-style, after the
// partition was learned as hours alone) is read within the hour, not only
// after a restart.
func TestInputPollFindsALayoutChangeWithinTheHour(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nlate_arrival: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s", dir)
	want := hourFile(t, dir, emailSend, at14(0).Add(-time.Hour), 0)
	r := startClockRun(t, conf, at14(50))
	r.pass(0)
	r.got.waitFor(t, want)

	later, key := dayHourFile(t, dir, emailSend, at14(0), 1)
	seen := func() bool {
		o, _ := r.in.conf.sel.objectAt(key)
		r.in.mu.Lock()
		defer r.in.mu.Unlock()
		return r.in.inFlight[key] || r.in.ckpt.isDone(o)
	}
	r.poll(1, time.Minute)
	if seen() {
		t.Fatalf("a poll a minute after the partition was learned listed %s: not hour by hour", key)
	}
	r.poll(2, relearnLayout)
	if !seen() {
		t.Fatalf("a poll %v after the partition was learned never listed %s", relearnLayout, key)
	}
	r.got.waitFor(t, union(want, later))
	expectExactly(t, r.got, union(want, later))
}

// A poll lists a partition of the usual layout hour by hour, never its
// whole directory, folder marker or not; a partition whose last listing
// found anything else beside its date=<hour>/ directories (here a stray
// object) is listed whole, until a listing finds nothing but hours again.
func TestInputPollListsTheUsualLayoutHourByHour(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	proxied, listings := recordListings(t, b)
	spec := func(eventType string) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 5, Seed: 16, DateHour: at14(0).Add(-time.Hour)}
	}
	want := union(uploadFixture(t, b, spec(emailSend)), uploadFixture(t, b, spec(uninstall)))
	usual, _, _ := strings.Cut(fixtures.Key(spec(emailSend)), "/date=")
	other, _, _ := strings.Cut(fixtures.Key(spec(uninstall)), "/date=")
	buckets.Upload(t, b, other+"/_SUCCESS", nil)
	buckets.Upload(t, b, usual+"/", nil) // a folder marker, as consoles make
	r := startClockRun(t, "url: \""+proxied+"\"\nwatch: true\npoll_interval: 1m\nlate_arrival: 1m\nprogress_interval: 0s", at14(50))
	r.pass(0)
	r.got.waitFor(t, want)
	poll := func(n int) []string {
		from := listings.count()
		r.poll(n, time.Minute)
		return listings.since(from)
	}
	hour14 := "/date=" + at14(0).Format(DateHourLayout) + "/"

	listed := poll(1)
	if slices.Contains(listed, usual+"/") || !slices.Contains(listed, usual+hour14) {
		t.Fatalf("a poll of the usual layout listed %q", listed)
	}
	if !slices.Contains(listed, other+"/") {
		t.Fatalf("a poll of a partition holding a stray object did not list it whole: %q", listed)
	}

	if err := b.Open(t).Delete(context.Background(), other+"/_SUCCESS"); err != nil {
		t.Fatal(err)
	}
	if listed := poll(2); !slices.Contains(listed, other+"/") {
		t.Fatalf("the poll after the stray object went did not list the partition whole: %q", listed)
	}
	if listed := poll(3); slices.Contains(listed, other+"/") || !slices.Contains(listed, other+hour14) {
		t.Fatalf("a partition holding only hours again was not listed hour by hour: %q", listed)
	}
}

// listingLog holds the prefixes listed through a recordListings proxy.
type listingLog struct {
	mu       sync.Mutex
	prefixes []string
}

func (l *listingLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prefixes)
}

func (l *listingLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.prefixes[n:])
}

// recordListings stands a proxy on loopback in front of the S3 stand-in b,
// recording the prefix of every listing, and returns b's URL through it.
func recordListings(t *testing.T, b *buckets.Bucket) (string, *listingLog) {
	t.Helper()
	log := &listingLog{}
	return proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			log.mu.Lock()
			log.prefixes = append(log.prefixes, r.URL.Query().Get("prefix"))
			log.mu.Unlock()
		}
		forward.ServeHTTP(w, r)
	}), log
}

// proxyS3 stands a proxy on loopback in front of the S3 stand-in b, which
// serves every request (forward passes it on to b), and returns b's URL
// through it.
// denyS3 answers as S3 does a request its policy denies.
func denyS3(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`))
}

// proxyS3 is b's URL through an HTTP front (buckets.ProxyS3).
func proxyS3(t *testing.T, b *buckets.Bucket, serve func(w http.ResponseWriter, r *http.Request, forward http.Handler)) string {
	return buckets.ProxyS3(t, b, serve).URL
}

// A listing that fails part way settles no hour: the hours it did not list
// may hold objects it never saw. Here the listing of hour 13 fails once; the
// retry must still list hour 13 (not prune it as done) and read its object.
func TestInputFailedListingSettlesNoHour(t *testing.T) {
	b, want, hour := objectInHour13(t)
	proxied := refuseOnce(t, b, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Query().Get("prefix"), hour) })
	r := startClockRun(t, "url: \""+proxied+"\"\nlate_arrival: 1m\nprogress_interval: 0s", at14(50))
	// The failed listing is retried after a backoff on the input's clock.
	if err := r.clock.BlockUntilContext(r.ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.retryToEnd(want)
}

// objectInHour13 is an S3 stand-in holding one object in hour 13, the
// object's event ids, and its hour's directory (/date=<hour>/).
func objectInHour13(t *testing.T) (*buckets.Bucket, map[string]bool, string) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	thirteen := at14(0).Add(-time.Hour)
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 5, Seed: 17, DateHour: thirteen}
	return b, uploadFixture(t, b, spec), "/date=" + thirteen.Format(DateHourLayout) + "/"
}

// retryToEnd lets a one-pass run's backoff after a failed listing run out
// and checks that the pass then read exactly want and ended.
func (r *clockRun) retryToEnd(want map[string]bool) {
	r.t.Helper()
	r.clock.Advance(time.Minute)
	select {
	case <-r.done: // a one-pass run: it ends once it read everything
	case <-r.ctx.Done():
		r.t.Fatal("the run never ended")
	}
	expectExactly(r.t, r.got, want)
}

// A listing whose connection the store (or a proxy, a load balancer) closes
// fails with an error that wraps io.EOF: it is a failed listing, not its
// end. Before, the walk took it for the end: the hour counted as listed in
// full and settled with its object unread, and a cut listing of the prefix
// was logged as "Found nothing under prefix", a wrong url or prefix.
func TestInputListingCutShortIsAFailure(t *testing.T) {
	b, want, hour := objectInHour13(t)
	var mu sync.Mutex
	healed := false
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		mu.Lock()
		cutting := strings.HasSuffix(r.URL.Query().Get("prefix"), hour) && !healed
		mu.Unlock()
		if !cutting {
			forward.ServeHTTP(w, r)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_ = conn.Close()
	})
	r := startClockRun(t, "url: \""+proxied+"\"\nlate_arrival: 1m\nprogress_interval: 0s", at14(50))
	blocked := make(chan error, 1)
	go func() { blocked <- r.clock.BlockUntilContext(r.ctx, 1) }()
	select {
	case <-r.done:
		t.Fatalf("the one pass ended without listing %s again, the cut listing taken for its end", hour)
	case err := <-blocked:
		if err != nil {
			t.Fatal(err)
		}
	}
	// The pass waits to list it again: the store works again by then.
	mu.Lock()
	healed = true
	mu.Unlock()
	r.retryToEnd(want)
	if got := r.logs.count("Cannot list", hour, "EOF"); got != 1 {
		t.Fatalf("%d errors naming the cut listing of %s, want 1:\n%s", got, hour, r.logs)
	}
}

// An object that could not be read (read_attempts ran out) is left for a
// later run, never recorded as done: the restart reads it.
func TestInputUnreadableObjectIsReadAfterARestart(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 5, Seed: 18, DateHour: at14(0).Add(-time.Hour)}
	want := uploadFixture(t, b, spec)
	proxied := refuseOnce(t, b, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".avro") })
	conf := "url: \"" + proxied + "\"\nread_attempts: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true"
	r := startClockRun(t, conf, at14(50))
	select {
	case <-r.done: // the one pass ended, the object refused
	case <-r.ctx.Done():
		t.Fatal("the run never ended")
	}
	expectExactly(t, r.got, map[string]bool{})
	r.close()

	r2 := startClockRun(t, conf, at14(55))
	select {
	case <-r2.done:
	case <-r2.ctx.Done():
		t.Fatal("the restarted run never ended")
	}
	expectExactly(t, r2.got, want)
}

// refuseOnce stands a proxy on loopback in front of the S3 stand-in b that
// refuses (403) the first GET matching refuse, and returns b's URL through
// it.
func refuseOnce(t *testing.T, b *buckets.Bucket, refuse func(*http.Request) bool) string {
	t.Helper()
	var once sync.Once
	return proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		refused := false
		if r.Method == http.MethodGet && refuse(r) {
			once.Do(func() { refused = true })
		}
		if !refused {
			forward.ServeHTTP(w, r)
			return
		}
		denyS3(w)
	})
}

// A partition with a level before date= (version=1/date=<hour>/) is listed
// as a directory at every poll; its date= hours behind the watermark are
// pruned there as in the usual layout. Before, the walk looked for the
// watermark of the level's directory, which has none, and listed every hour
// of the partition's history at every poll: 24 listings a poll after a day.
func TestInputPollPrunesHoursBelowALevelBeforeDate(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	proxied, listings := recordListings(t, b)
	want := map[string]bool{}
	for h := range 24 { // the day to 12:00, closed at 14:10 (late_arrival 2h)
		spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: uint64(h),
			DateHour: at14(0).Add(-time.Duration(h+3) * time.Hour)}
		hour := "date=" + spec.DateHour.Format(DateHourLayout)
		var buf bytes.Buffer
		records, err := fixtures.WriteFile(&buf, spec)
		if err != nil {
			t.Fatal(err)
		}
		buckets.Upload(t, b, strings.Replace(fixtures.Key(spec), "/"+hour+"/version=1/", "/version=1/"+hour+"/", 1), buf.Bytes())
		for _, rec := range records {
			want[rec["id"].(string)] = true
		}
	}
	r := startClockRun(t, "url: \""+proxied+"\"\nwatch: true\npoll_interval: 1m\nprogress_interval: 0s", at14(10))
	r.pass(0)
	r.got.waitFor(t, want)
	r.waitCounts("24 objects done", func(c inputCounts) bool { return c.done == 24 && c.inFlight == 0 })
	from := listings.count()
	r.poll(1, time.Minute)
	var hours []string
	for _, prefix := range listings.since(from) {
		if strings.Contains(prefix, "/date=") {
			hours = append(hours, prefix)
		}
	}
	if len(hours) != 0 {
		t.Fatalf("a poll once every hour was done listed %d date= directories, behind the watermark, from %q", len(hours), hours[0])
	}
	expectExactly(t, r.got, want)
}
