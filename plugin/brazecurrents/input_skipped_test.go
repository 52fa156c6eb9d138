package brazecurrents

import (
	"context"
	"fmt"
	"maps"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// A Currents export holds objects that are not .avro under its event_type=
// directories: copies a lifecycle job recompressed (.avro.gz), an upload a
// copy tool left unfinished (.avro.tmp), another tool's file. The input does
// not read them, and says so: one warning naming how many, why and one key,
// again only after a pass that found none; braze_currents_objects_skipped
// counts each once by reason, however many polls list it. Its own
// checkpoint, a folder marker and whatever lies outside the event_type=
// directories are none of that.
func TestInputSaysWhichObjectsItSkips(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := func(n int, hour time.Time) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 2, Seed: 80 + uint64(n), DateHour: hour, Offset: n}
	}
	thirteen, fourteen := at14(0).Add(-time.Hour), at14(0)
	key := func(n int, hour time.Time) string { return fixtures.Key(spec(n, hour)) }
	junk := []byte("not an Avro container file")
	good := uploadFixture(t, b, spec(0, thirteen))
	partition, _, _ := strings.Cut(key(0, thirteen), "/date=")
	gz, tmp, gz2 := key(0, thirteen)+".gz", key(1, thirteen)+".tmp", key(2, thirteen)+".gz"
	manifest := path.Dir(key(0, thirteen)) + "/manifest.json"
	for _, k := range []string{gz, tmp, gz2, manifest, // 2 compressed, 1 partial, 1 other
		"currents/README.txt", path.Dir(partition) + "/notes.json", // outside the event_type= directories
	} {
		buckets.Upload(t, b, k, junk)
	}
	buckets.Upload(t, b, partition+"/date="+thirteen.Format(DateHourLayout)+"/", nil) // a console's folder marker
	res, metrics := countResources(t)
	conf := "url: \"" + b.URL + "\"\nwatch: true\npoll_interval: 1m\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  key: " + partition + "/connect.json\n  lease: 10h"
	r, err := connectClockRunWith(t, conf, at14(50), func(in *currentsInput) {
		in.stats = newInputStats(res.Metrics(), in.log)
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := r.logs
	skipped := func(when string, want map[string]float64) {
		t.Helper()
		if got := countsByLabel(t, metrics, "reason")["braze_currents_objects_skipped"]; !maps.Equal(got, want) {
			t.Fatalf("%s: braze_currents_objects_skipped %v, want %v", when, got, want)
		}
	}
	warned := func(when string, n int, parts ...string) {
		t.Helper()
		if got := logs.count("level=WARN", "that are not .avro"); got != n {
			t.Fatalf("%s: %d warnings of objects that are not .avro, want %d:\n%s", when, got, n, logs)
		}
		if n > 0 {
			if last := logs.matching("that are not .avro")[n-1]; !containsAll(last, parts...) {
				t.Fatalf("%s: the warning %q does not say %q", when, last, parts)
			}
		}
	}
	r.pass(0)
	r.got.waitFor(t, good)
	r.waitCheckpointed(1) // the checkpoint's slots are in the partition for the next pass
	warned("first pass", 1, "Found 4 objects under event_type= directories", "(2 compressed, 1 partial, 1 other)", `such as \"`+gz+`\"`, "(.avro.gz)",
		// Once the hour settles no poll lists it again.
		"restore such objects as .avro, uncompressed, within late_arrival (2h0m0s) after their hour ends, to have a poll read them; later, only a replay does: a new checkpoint.key")
	skipped("first pass", map[string]float64{skipCompressed: 2, skipPartial: 1, skipOther: 1})

	// Listed again while hour 13 may still get files: said and counted once.
	r.poll(1, time.Minute)
	warned("second pass", 1)
	skipped("second pass", map[string]float64{skipCompressed: 2, skipPartial: 1, skipOther: 1})

	// The user restores the objects as .avro: a pass skips none, and the
	// restored one is read.
	bkt := b.Open(t)
	for _, k := range []string{gz, tmp, gz2, manifest} {
		if err := bkt.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	restored := uploadFixture(t, b, spec(2, thirteen))
	r.poll(2, time.Minute)
	r.got.waitFor(t, restored)
	warned("clean pass", 1)

	// A new stretch: warned of again.
	buckets.Upload(t, b, key(3, fourteen)+".gz", junk)
	r.poll(3, time.Minute)
	warned("new stretch", 2, "Found 1 object under event_type= directories", "(1 compressed)", key(3, fourteen)+`.gz\"`)
	skipped("new stretch", map[string]float64{skipCompressed: 3, skipPartial: 1, skipOther: 1})
	expectExactly(t, r.got, union(good, restored))
	if n := logs.count("level=WARN"); n != 2 {
		t.Fatalf("%d warnings, want the two of skipped objects:\n%s", n, logs)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Which keys count as skipped, and why: only those under an event_type=
// directory that the selection would read were they .avro.
func TestSkipReason(t *testing.T) {
	dir := "currents/dataexport.prod-01.S3.integration.aaaaaaaaaaaaaaaaaaaaaaaa/event_type=" + emailSend + "/date=2026-12-01-13/version=1/prod/"
	every := selection{include: []string{"*"}, shards: 1}
	for _, tc := range []struct {
		sel       selection
		key, want string
	}{
		{every, dir + "f+0+1.avro", ""},
		{every, dir + "f+0+1.avro.gz", skipCompressed},
		{every, dir + "f+0+1.avro.ZST", skipCompressed},
		{every, dir + "f+0+1.avro.tmp", skipPartial},
		{every, dir + "f+0+1.avro._COPYING_", skipPartial},
		{every, dir + "_SUCCESS", skipOther},
		{every, "currents/dataexport.x/event_type=" + emailSend + "/manifest.json", skipOther},
		{every, dir, ""}, // a folder marker
		{every, "currents/README.txt", ""},
		{every, "currents/dataexport.x/notes.json", ""},
		{every, "currents-connect/checkpoints/currents-connect-checkpoint-currents-shard-0-of-1.a.json", ""},
		{selection{exclude: []string{"users.messages.*"}, shards: 1}, dir + "f+0+1.avro.gz", ""},
		{selection{until: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), shards: 1}, dir + "f+0+1.avro.gz", ""},
	} {
		if got := tc.sel.skipReason(tc.key); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.key, got, tc.want)
		}
	}
	// Of two shards, the one that would read it counts it.
	var by []string
	for shard := range 2 {
		if r := (selection{include: []string{"*"}, shard: shard, shards: 2}).skipReason(dir + "f+0+1.avro.gz"); r != "" {
			by = append(by, r)
		}
	}
	if len(by) != 1 {
		t.Errorf("%d of 2 shards count a skipped object, want one", len(by))
	}
}

// With notifications, one naming an object that is not .avro under an
// event_type= directory is acknowledged and warned of, once, until one
// names an object to read.
func TestNotificationOfObjectsNotAvroWarned(t *testing.T) {
	n := startNotified(t, fixtures.TreeOptions{EventTypes: []string{emailSend}, RecordsPerFile: 2, Seed: 90}, "")
	w := n.written[0]
	for _, key := range []string{w.Key + ".gz", w.Key + ".tmp", "currents/notes.txt"} {
		n.publishGCS("acme-currents", key, "OBJECT_FINALIZE")
		if s := n.nextSettled(); !s.acked || s.object != key {
			t.Fatalf("%+v settled, want %s acknowledged", s, key)
		}
	}
	if got := n.logs.matching("which is not .avro"); len(got) != 1 || !containsAll(got[0], "level=WARN", w.Key+`.gz\"`, "(compressed)") {
		t.Fatalf("warnings %q, want one naming %s.gz", got, w.Key)
	}
	n.publishGCS("acme-currents", w.Key, "OBJECT_FINALIZE")
	n.readAcked(w)
	n.publishGCS("acme-currents", w.Key+".tmp", "OBJECT_FINALIZE")
	n.nextSettled()
	if got := n.logs.matching("which is not .avro"); len(got) != 2 || !containsAll(got[1], w.Key+`.tmp\"`, "(partial)") {
		t.Fatalf("warnings %q, want a second one naming %s.tmp", got, w.Key)
	}
}

// A pass remembers the keys of at most maxSkippedTracked skipped objects,
// and counted only those: 100,000 .avro.gz objects showed as 65,536 in
// braze_currents_objects_skipped, at every pass. Those past the bound are
// counted by number, when it grows; the ones remembered still count once.
func TestSkippedPastTheTrackedBoundCount(t *testing.T) {
	res, metrics := countResources(t)
	in := &currentsInput{log: res.Logger(), stats: newInputStats(res.Metrics(), res.Logger())}
	every := selection{include: []string{"*"}, shards: 1}
	dir := "currents/dataexport.prod-01.S3.integration.aaaaaaaaaaaaaaaaaaaaaaaa/event_type=" + emailSend + "/date=2026-12-01-13/version=1/prod/"
	pass := func(n int) *walker {
		w := &walker{}
		for i := range n {
			w.skipped.note(every, fmt.Sprintf("%sf+0+%d.avro.gz", dir, i))
		}
		return w
	}
	skipped := func(when string, want float64) {
		t.Helper()
		if got := countsByLabel(t, metrics, "reason")["braze_currents_objects_skipped"][skipCompressed]; got != want {
			t.Errorf("%s: braze_currents_objects_skipped{reason=%q} %v, want %v", when, skipCompressed, got, want)
		}
	}
	in.noteSkipped(pass(maxSkippedTracked + 10))
	skipped("first pass", maxSkippedTracked+10)
	in.noteSkipped(pass(maxSkippedTracked + 10))
	skipped("the same objects again", maxSkippedTracked+10)
	in.noteSkipped(pass(maxSkippedTracked + 15))
	skipped("5 more", maxSkippedTracked+15)
}
