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

const smsSend = "users.messages.sms.Send"

// One event type's directory cannot be listed (a bucket policy denying
// s3:ListBucket under it, say). The other event types, the one listed after
// it too, are read in the same pass and their hours settle; the failing one
// is logged once, listed again at every pass, and none of its hours settle,
// across an hour's close and a restart. Once it can be listed, all of it is
// read, the object that landed meanwhile too.
func TestInputUnlistablePartitionLeavesTheOthersGoing(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	// Listed in this order: behaviors, messages.email, messages.sms.
	upload := func(n int, eventType string, hour time.Time) map[string]bool {
		return uploadFixture(t, b, fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
			Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n})
	}
	thirteen, fourteen := at14(0).Add(-time.Hour), at14(0)
	others := union(upload(0, uninstall, thirteen), upload(1, smsSend, thirteen))
	denied := union(upload(2, emailSend, thirteen))
	var refusing atomic.Bool
	refusing.Store(true)
	partition := func(eventType string) string {
		p, _, _ := strings.Cut(fixtures.Key(fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa"}), "/date=")
		return p
	}
	deniedPartition, a, c := partition(emailSend), partition(uninstall), partition(smsSend)
	deniedDir := deniedPartition + "/"
	listings := &listingLog{}
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			prefix := r.URL.Query().Get("prefix")
			listings.mu.Lock()
			listings.prefixes = append(listings.prefixes, prefix)
			listings.mu.Unlock()
			if refusing.Load() && strings.HasPrefix(prefix, deniedDir) {
				denyS3(w)
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 5m\nlate_arrival: 1m\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h"
	r := startClockRun(t, conf, at14(50))
	logs := r.logs

	r.got.waitFor(t, others)
	r.pass(0)
	if n := r.got.total(); n != len(others) {
		t.Fatalf("%d events read, want the %d of the listable event types", n, len(others))
	}
	watermarks := func(ck *checkpoint) map[string]time.Time {
		ck.mu.Lock()
		defer ck.mu.Unlock()
		return map[string]time.Time{a: ck.watermarks[a], deniedPartition: ck.watermarks[deniedPartition], c: ck.watermarks[c]}
	}
	r.waitCheckpointed(2)
	if w := watermarks(r.in.ckpt); !w[a].Equal(thirteen) || !w[c].Equal(thirteen) || !w[deniedPartition].IsZero() {
		t.Fatalf("watermarks after the first pass %v: want hour 13 for the listed types, none for %s", w, deniedPartition)
	}

	// Objects land in hour 14, which closes (15:01) while the directory is
	// still refused: it is listed again at every pass, and its hour 14 does
	// not settle. That of the others does at 15:51, when their directories
	// are listed again (relearnLayout; the polls between go hour by hour,
	// settleBy).
	others = union(others, upload(3, uninstall, fourteen))
	denied = union(denied, upload(4, emailSend, fourteen))
	for i, step := range []time.Duration{5 * time.Minute, 10 * time.Minute, 10 * time.Minute, 36 * time.Minute} { // 14:55, 15:05, 15:15, 15:51
		from := listings.count()
		r.poll(i+1, step)
		if !hasPrefix(listings.since(from), deniedDir) {
			t.Fatalf("poll %d did not list %s again: %q", i+1, deniedDir, listings.since(from))
		}
	}
	r.got.waitFor(t, others)
	if n := r.got.total(); n != len(others) {
		t.Fatalf("%d events read, want %d", n, len(others))
	}
	r.waitCheckpointed(3)
	if w := watermarks(r.in.ckpt); !w[a].Equal(fourteen) || !w[c].Equal(fourteen) || !w[deniedPartition].IsZero() {
		t.Fatalf("watermarks after hour 14 closed %v: want hour 14 for the listed types, none for %s", w, deniedPartition)
	}
	if n := logs.count("level=ERROR", deniedDir); n != 1 {
		t.Fatalf("%d errors name %s over five passes, want one:\n%s", n, deniedDir, logs)
	}

	// A restart on the checkpoint, still refused: nothing is read again, and
	// nothing of the refused directory was counted as done.
	r.close()
	doc := savedCheckpoint(t, b.URL, "currents-connect-checkpoint-currents-shard-0-of-1")
	if pd := doc.Partitions[deniedPartition]; pd != nil && (pd.Watermark != "" || len(pd.Done) > 0) {
		t.Fatalf("the saved checkpoint counts some of %s as done: %+v", deniedPartition, pd)
	}
	if pd := doc.Partitions[c]; pd == nil || pd.Watermark != "2026-12-01-14" {
		t.Fatalf("the saved checkpoint has %+v for %s: want watermark hour 14", pd, c)
	}
	r2 := startClockRun(t, conf, at14(60+55))
	logs2 := r2.logs
	r2.pass(0)
	if n := r2.got.total(); n != 0 {
		t.Fatalf("the restart read %d events again", n)
	}
	refusing.Store(false)
	r2.poll(1, time.Minute)
	r2.got.waitFor(t, denied)
	expectExactly(t, r2.got, denied)
	r2.waitCheckpointed(2)
	if w := watermarks(r2.in.ckpt); !w[deniedPartition].Equal(fourteen) {
		t.Fatalf("watermark of %s once listed and read: %v, want hour 14", deniedPartition, w[deniedPartition])
	}
	if logs2.count("level=ERROR", deniedDir) != 1 || logs2.count("level=INFO", deniedDir, "works again") != 1 {
		t.Fatalf("the restart's failure and recovery are not logged once each:\n%s", logs2)
	}
}

// One hour of a partition listed hour by hour cannot be listed while it
// closes: the partition's later hour is read meanwhile, but its watermark
// stays before the refused hour until a pass lists it, and then reads it.
func TestInputUnlistableHourHoldsItsPartitionBack(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	upload := func(hour time.Time) map[string]bool {
		return uploadFixture(t, b, fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
			Seed: uint64(hour.Unix()), DateHour: hour})
	}
	thirteen, fourteen := at14(0).Add(-time.Hour), at14(0)
	want := upload(thirteen)
	var refusing atomic.Bool
	hour14 := "/date=" + fourteen.Format(DateHourLayout) + "/"
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if refusing.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Query().Get("prefix"), hour14) {
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	conf := "url: \"" + proxied + "\"\nwatch: true\npoll_interval: 5m\nlate_arrival: 1m\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10h"
	r := startClockRun(t, conf, at14(50))
	partition := r.partition(t, emailSend)
	r.pass(0)
	r.got.waitFor(t, want)
	r.waitCheckpointed(1)

	refusing.Store(true)
	refused := upload(fourteen)
	r.poll(1, 5*time.Minute) // 14:55
	fifteen := upload(fourteen.Add(time.Hour))
	r.poll(2, 10*time.Minute) // 15:05: hour 14 closed
	r.got.waitFor(t, fifteen)
	r.waitCheckpointed(2)
	r.poll(3, 10*time.Minute) // 15:15
	if w, _ := r.in.ckpt.watermark(partition); !w.Equal(thirteen) || r.got.total() != len(want)+len(fifteen) {
		t.Fatalf("while hour 14 is refused: watermark %v, %d events read; want hour 13, and hours 13 and 15 read", w, r.got.total())
	}

	refusing.Store(false)
	r.poll(4, 10*time.Minute) // 15:25
	r.got.waitFor(t, refused)
	r.waitCheckpointed(3)
	expectExactly(t, r.got, union(want, refused, fifteen))
	// Hour by hour, a poll settles only the hours closed when the
	// directory was listed at 14:50 (settleBy); the next listing of it does.
	r.poll(5, 26*time.Minute) // 15:51
	if w, _ := r.in.ckpt.watermark(partition); !w.Equal(fourteen) {
		t.Fatalf("once hour 14 was listed and read, and the directory listed again: watermark %v, want hour 14", w)
	}
}

// The directory of one integration cannot be listed: the partitions of the
// other are read in the same pass, and none under the refused one settles.
func TestInputUnlistableIntegrationLeavesTheOthersGoing(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := func(integration string, seed uint64) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: emailSend, IntegrationID: integration, Records: 3, Seed: seed, DateHour: at14(0).Add(-time.Hour)}
	}
	refused := spec("aaaaaaaaaaaaaaaaaaaaaaaa", 21) // listed first
	uploadFixture(t, b, refused)
	want := uploadFixture(t, b, spec("bbbbbbbbbbbbbbbbbbbbbbbb", 22))
	deniedDir, _, _ := strings.Cut(fixtures.Key(refused), "event_type=")
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") && strings.HasPrefix(r.URL.Query().Get("prefix"), deniedDir) {
			denyS3(w)
			return
		}
		forward.ServeHTTP(w, r)
	})
	r := startClockRun(t, "url: \""+proxied+"\"\nwatch: true\nlate_arrival: 1m\nprogress_interval: 0s", at14(50))
	r.got.waitFor(t, want)
	r.pass(0)
	expectExactly(t, r.got, want)
	if _, ok := r.in.ckpt.watermark(deniedDir + "event_type=" + emailSend); ok {
		t.Fatal("a partition under the refused directory has a watermark")
	}
}

// A failure to list the prefix itself fails the pass, which starts again
// from the top after a backoff, as it always did; the pass that lists it is
// logged once.
func TestInputUnlistablePrefixRetriesThePass(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	want := uploadFixture(t, b, fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3, Seed: 23, DateHour: at14(0).Add(-time.Hour)})
	proxied := refuseOnce(t, b, func(r *http.Request) bool {
		return r.URL.Query().Get("prefix") == "currents/" && r.URL.Query().Get("delimiter") == "/" // the pass's, not Connect's check
	})
	r := startClockRun(t, "url: \""+proxied+"\"\nprogress_interval: 0s", at14(50))
	logs := r.logs
	if err := r.clock.BlockUntilContext(r.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if r.got.total() != 0 || logs.count("level=ERROR", "retrying in") != 1 {
		t.Fatalf("after the prefix failed to list: %d events read, logs:\n%s", r.got.total(), logs)
	}
	r.retryToEnd(want)
	// The retry that lists it says so, once: the errors stopping would
	// leave the on-call engineer to guess.
	if logs.count("level=INFO", "Listing", "works again") != 1 {
		t.Fatalf("no line says the prefix lists again:\n%s", logs)
	}
}

func hasPrefix(prefixes []string, prefix string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// A directory that cannot be listed is logged as the walk meets it, not when
// the pass ends: a pass may take long after it (a large backfill, other
// directories whose listings are retried or stall), and until then the log
// said nothing of the failure. Here the listing of a later partition is held
// until the error is seen.
func TestInputUnlistableDirLoggedAtOnce(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	for i, et := range []string{uninstall, emailSend} {
		uploadFixture(t, b, fixtures.FileSpec{EventType: et, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: uint64(40 + i), DateHour: at14(0).Add(-time.Hour)})
	}
	held := make(chan struct{})
	proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		switch prefix := r.URL.Query().Get("prefix"); {
		case strings.Contains(prefix, "event_type="+uninstall+"/"):
			denyS3(w)
			return
		case strings.Contains(prefix, "event_type="+emailSend+"/"):
			<-held
		}
		forward.ServeHTTP(w, r)
	})
	t.Cleanup(func() { close(held) }) // before the proxy closes: it waits for its requests
	r := startClockRun(t, "url: \""+proxied+"\"\nprogress_interval: 0s", at14(50))
	line := r.logs.waitFor(t, "Cannot list", 1)
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, uninstall) {
		t.Fatalf("want an error naming the partition of %s: %s", uninstall, line)
	}
}
