package brazecurrents

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// A backfill of a single event type: its hours settle one by one as the
// first pass lists them, across the day's end, so the checkpoint saved
// while the pass is half way holds a watermark and at most one done key.
// Before, the partition settled only when its listing ended: the document
// held every done key of the backfill until then. The hours not closed when
// the pass started (12 and 13, late_arrival 2h) stay above the watermark
// though the listing passed them.
func TestInputSettlesHoursAsThePartitionsListingPassesThem(t *testing.T) {
	b := startOneTypeBackfill(t)
	r, hold := b.run, b.hold
	hold.release()
	r.pass(0)
	r.got.waitFor(t, b.want)
	expectExactly(t, r.got, b.want)
	r.waitCheckpointed(26)
	doc, _ := r.savedDoc(t)
	open := []string{at14(0).Add(-2 * time.Hour).Format(DateHourLayout), at14(0).Add(-time.Hour).Format(DateHourLayout)}
	if pd := doc.Partitions[b.partition]; pd == nil || pd.Watermark != "2026-12-01-11" || len(pd.Done) != 2 ||
		!strings.Contains(pd.Done[0], "date="+open[0]) || !strings.Contains(pd.Done[1], "date="+open[1]) {
		t.Fatalf("after the pass: %s (%v); want watermark hour 11, the done keys of hours %v", sums(pd), pd, open)
	}
}

// oneTypeBackfill is a first pass over 26 hours of one event type, one
// object an hour, held on midnight's object once it is done and the
// checkpoint saved with it.
type oneTypeBackfill struct {
	dir, conf, partition string
	byHour               map[time.Time]map[string]bool
	want                 map[string]bool
	run                  *clockRun
	hold                 *holdAt
	midnight             time.Time
}

// startOneTypeBackfill starts the pass at 14:10 on Dec 1 and checks the
// checkpoint saved at midnight's object: the walk settled hour 23 before
// it handed that object out, and may have settled midnight since; at most
// one done key is left.
func startOneTypeBackfill(t *testing.T) *oneTypeBackfill {
	dir := t.TempDir()
	b := &oneTypeBackfill{dir: dir, byHour: map[time.Time]map[string]bool{}, want: map[string]bool{}, midnight: at14(0).Add(-14 * time.Hour),
		conf: fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h", dir)}
	first := at14(0).Add(-26 * time.Hour) // Nov 30, 12:00
	for h := range 26 {                   // to Dec 1, 13:00
		hour := first.Add(time.Duration(h) * time.Hour)
		b.byHour[hour] = hourFile(t, dir, uninstall, hour, h)
		b.want = union(b.want, b.byHour[hour])
	}
	b.hold = newHoldAt(typeDir(uninstall) + "date=" + b.midnight.Format(DateHourLayout) + "/")
	t.Cleanup(b.hold.release)
	var err error
	if b.run, err = connectClockRunWith(t, b.conf, at14(10), holding(b.hold)); err != nil {
		t.Fatal(err)
	}
	b.hold.wait(b.run)
	b.run.noPassEnded()
	b.partition = b.run.partition(t, uninstall)
	pd := savedCheckpoint(t, "file://"+dir, defaultCheckpoint).Partitions[b.partition]
	settled := []string{b.midnight.Add(-time.Hour).Format(DateHourLayout), b.midnight.Format(DateHourLayout)}
	if pd == nil || !slices.Contains(settled, pd.Watermark) || len(pd.Done) > 1 {
		t.Fatalf("saved once midnight's object of %s was done, its listing half way: %s; want watermark %v, at most one done key", uninstall, sums(pd), settled)
	}
	return b
}

// A process stopped half way through that backfill, and started again at
// 16:05: the restart reads none of the hours the saved watermark covers,
// every event arrives, and hours 12 and 13, closed by then, settle.
func TestInputRestartResumesFromAnHourSettledMidPartition(t *testing.T) {
	b := startOneTypeBackfill(t)
	b.hold.release()
	b.run.close()
	saved := savedCheckpoint(t, "file://"+b.dir, defaultCheckpoint).Partitions[b.partition]
	watermark, err := time.Parse(DateHourLayout, saved.Watermark)
	if err != nil || watermark.Before(b.midnight.Add(-time.Hour)) {
		t.Fatalf("saved at the stop: %s; want a watermark from hour 23 on", sums(saved))
	}
	r := startClockRun(t, b.conf, at14(125))
	r.pass(0)
	// To read: the hours after the watermark, and an object abandoned at
	// the stop (its events returned unsent), recorded as failed.
	rest := map[string]bool{}
	for hour, ids := range b.byHour {
		if hour.After(watermark) {
			rest = union(rest, ids)
		}
	}
	for _, key := range saved.Failed {
		hour, _ := ParseObjectKey(key).Hour()
		rest = union(rest, b.byHour[hour])
	}
	r.got.waitFor(t, rest)
	for id := range b.want {
		if n := b.run.got.count(id) + r.got.count(id); n == 0 {
			var in time.Time
			for h, ids := range b.byHour {
				if ids[id] {
					in = h
				}
			}
			t.Fatalf("event %s of hour %v never arrived (saved watermark %s, failed %v; %d events before the stop)", id, in, saved.Watermark, saved.Failed, b.run.got.total())
		}
		if !rest[id] && r.got.count(id) > 0 {
			t.Fatalf("event %s read again after the restart, though the saved watermark %s covers its hour (failed: %v)", id, saved.Watermark, saved.Failed)
		}
	}
	r.waitCheckpointed(uint64(len(rest) / 5)) // 5 events an object
	if pd, _ := r.savedDoc(t); pd.Partitions[b.partition] == nil || pd.Partitions[b.partition].Watermark != "2026-12-01-13" || len(pd.Partitions[b.partition].Done) != 0 {
		t.Fatalf("after the restart's pass at 16:05: %s; want watermark hour 13, no done key", sums(pd.Partitions[b.partition]))
	}
}

// commonPrefixes matches the directories of an S3 listing's answer.
var commonPrefixes = regexp.MustCompile(`(?s)<CommonPrefixes>.*?</CommonPrefixes>`)

// A store that lists a partition's hours out of key order, against
// gocloud.dev/blob's contract (S3, GCS and Azure list in key order): here
// hour 10 comes last, on a second page, once hours 11 and 12 are read and
// done. Hour 11's settling counts hour 10 as done, and would prune it
// unread; the walk takes that back when it meets hour 10, which is read,
// and settles that partition only as a whole from then on.
func TestInputUnorderedListingLosesNoHour(t *testing.T) {
	r, want, release := startUnorderedListing(t, []int{8, 9, 11, 12}, []int{10})
	r.waitCheckpointed(4)
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-3 * time.Hour)) {
		t.Fatalf("watermark once hours 8, 9, 11 and 12 are done: %v, want hour 11 (hour 12 closes at 15:00, late arrivals included)", w)
	}
	close(release)
	r.checkUnorderedPass(want)
}

// The same with two hours out of order, the second before the first: hour
// 9 comes after hour 10. Taking back only the hours from 10 on left hour 9
// behind the watermark, pruned unread; the walk takes back every hour its
// listing settled.
func TestInputUnorderedListingOfTwoHoursLosesNoHour(t *testing.T) {
	r, want, release := startUnorderedListing(t, []int{8, 11, 12}, []int{10, 9})
	r.waitCheckpointed(3)
	close(release)
	r.checkUnorderedPass(want)
}

// startUnorderedListing uploads an object in each of hours 8 to 12 to an
// S3 stand-in whose front lists the partition's hours first, on a first
// page, and then last, on a second page, once release is closed.
func startUnorderedListing(t *testing.T, first, last []int) (*clockRun, map[string]bool, chan struct{}) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	want := map[string]bool{}
	for h := 8; h <= 12; h++ {
		want = union(want, uploadFixture(t, b, fixtures.FileSpec{EventType: uninstall, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
			Seed: uint64(h), DateHour: at14(0).Add(time.Duration(h-14) * time.Hour), Offset: h}))
	}
	var listings atomic.Int32
	var lastPage []byte
	release := make(chan struct{})
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Query().Get("prefix"), typeDir(uninstall)) {
			forward.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		switch listings.Add(1) {
		case 1: // the first hours, and more to come
			rec := httptest.NewRecorder()
			forward.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			dirs := commonPrefixes.FindAll(body, -1)
			if len(dirs) != 5 {
				t.Errorf("the partition's listing: %d directories, want 5: %s", len(dirs), body)
				return
			}
			head, tail := body[:commonPrefixes.FindIndex(body)[0]], body[bytes.LastIndex(body, dirs[4])+len(dirs[4]):]
			truncated := bytes.Replace(head, []byte("<IsTruncated>false</IsTruncated>"), []byte("<IsTruncated>true</IsTruncated><NextContinuationToken>next</NextContinuationToken>"), 1)
			page := [][]byte{truncated}
			for _, h := range first {
				page = append(page, dirs[h-8])
			}
			_, _ = w.Write(slices.Concat(append(page, tail)...))
			page = [][]byte{head}
			for _, h := range last {
				page = append(page, dirs[h-8])
			}
			lastPage = slices.Concat(append(page, tail)...)
		case 2: // the last hours, once the others are done
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write(lastPage)
		default:
			forward.ServeHTTP(w, r)
		}
	})
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 5m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h"
	return startClockRun(t, conf, at14(10)), want, release
}

// checkUnorderedPass checks that the pass read every event once, settled
// hour 11, and logged one error, naming hour 10 listed after hour 12.
func (r *clockRun) checkUnorderedPass(want map[string]bool) {
	t := r.t
	t.Helper()
	r.pass(0)
	if c := r.in.counts(); c.done+int64(c.inFlight) < int64(len(want)/3) { // 3 events an object
		t.Fatalf("after the pass: %d objects done, %d in flight; want all %d read", c.done, c.inFlight, len(want)/3)
	}
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.waitCheckpointed(5)
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-3 * time.Hour)) {
		t.Fatalf("watermark after the pass: %v, want hour 11", w)
	}
	if got := r.logs.matching("not in key order"); len(got) != 1 || !strings.Contains(got[0], "date=2026-12-01-10/ after date=2026-12-01-12") {
		t.Fatalf("errors logged for the unordered listing: %q; want one, naming hour 10 listed after hour 12", got)
	}
}

// Braze moves a partition to another layout in hour 10, a level before
// date= (version=2/date=<hour>/), which lists after the date= hours: hour
// 10 settled as the listing passed date=2026-12-01-10/, and once its object
// there is done the watermark covers the hour, so its object in the new
// layout would count as done unread. The walk takes back the hours it
// settled when it meets another layout after them, and that partition
// settles only as a whole from then on.
func TestInputLayoutAfterTheHoursLosesNoHour(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := func(h int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: uninstall, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
			Seed: uint64(h), DateHour: at14(0).Add(time.Duration(h%100-14) * time.Hour), Offset: h}
	}
	want := union(uploadFixture(t, b, spec(9)), uploadFixture(t, b, spec(10)))
	moved := spec(110) // hour 10, in the new layout
	var buf bytes.Buffer
	records, err := fixtures.WriteFile(&buf, moved)
	if err != nil {
		t.Fatal(err)
	}
	hour := "date=" + moved.DateHour.Format(DateHourLayout)
	buckets.Upload(t, b, strings.Replace(fixtures.Key(moved), "/"+hour+"/version=1/", "/version=2/"+hour+"/", 1), buf.Bytes())
	for _, rec := range records {
		want[rec["id"].(string)] = true
	}
	release := make(chan struct{})
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Query().Get("prefix"), typeDir(uninstall)+"version=2/") {
			select { // until the old layout's hours are done
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 5m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h"
	r := startClockRun(t, conf, at14(10))
	r.waitCheckpointed(2)
	close(release)
	r.pass(0)
	if c := r.in.counts(); c.done+int64(c.inFlight) < 3 {
		t.Fatalf("after the pass: %d objects done, %d in flight; want the object of hour 10 in the new layout read too", c.done, c.inFlight)
	}
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
	r.waitCheckpointed(3)
	if w, _ := r.in.ckpt.watermark(r.partition(t, uninstall)); !w.Equal(at14(0).Add(-3 * time.Hour)) {
		t.Fatalf("watermark after the pass: %v, want hour 11", w)
	}
	if got := r.logs.matching("another layout"); len(got) != 1 || !strings.Contains(got[0], typeDir(uninstall)+"version=2/ follows") {
		t.Fatalf("warnings logged for the new layout: %q; want one, naming version=2/", got)
	}
}
