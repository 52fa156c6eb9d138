package brazecurrents

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	target, err := url.Parse(q.Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	log, proxy := &listingLog{}, httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			log.mu.Lock()
			log.prefixes = append(log.prefixes, r.URL.Query().Get("prefix"))
			log.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	q.Set("endpoint", srv.URL)
	u.RawQuery = q.Encode()
	return u.String(), log
}
