package brazecurrents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func hourObj(partition string, hour time.Time, n int) object {
	return object{key: partition + "/date=" + hour.Format(DateHourLayout) + "/f" + string(rune('a'+n)) + ".avro", partition: partition, hour: hour}
}

func at(h int) time.Time { return time.Date(2026, 11, 28, h, 0, 0, 0, time.UTC) }

// The watermark passes an hour only after a listing that started once the
// hour had closed (its end plus late_arrival) found every object in it done.
func TestCheckpointWatermarkWaitsForAListingAfterTheHourClosed(t *testing.T) {
	c := newCheckpoint(2*time.Hour, selection{})
	p := "currents/x/event_type=a"
	a, b, d, e := hourObj(p, at(6), 0), hourObj(p, at(7), 0), hourObj(p, at(7), 1), hourObj(p, at(11), 0)
	for _, o := range []object{a, b, d, e} {
		if c.isDone(o) {
			t.Fatal("new object counted as done")
		}
		c.opened(o)
	}
	c.finished(a)
	if _, ok := c.watermark(p); ok {
		t.Fatal("watermark moved before any listing completed")
	}
	c.walked([]string{p}, at(12)) // hours up to 08 had closed (09 closes at 12:00 exactly)
	if w, _ := c.watermark(p); !w.Equal(at(6)) {
		t.Fatalf("watermark %v, want 06 (b and d in 07 are open)", w)
	}
	c.finished(b)
	c.finished(d)
	c.finished(e)
	if w, _ := c.watermark(p); !w.Equal(at(8)) {
		t.Fatalf("watermark %v, want 08: hour 11 was listed before it closed", w)
	}
	// A file lands late in hour 11, before it closes at 14:00; the first
	// listing after the close finds it, and the hour waits for it.
	f := hourObj(p, at(11), 1)
	if c.isDone(f) {
		t.Fatal("late object counted as done")
	}
	c.opened(f)
	c.walked([]string{p}, at(14).Add(time.Minute))
	if w, _ := c.watermark(p); !w.Equal(at(10)) {
		t.Fatalf("watermark %v, want 10 (f in 11 is open)", w)
	}
	c.finished(f)
	if w, _ := c.watermark(p); !w.Equal(at(11)) {
		t.Fatalf("watermark %v, want 11", w)
	}
	doc, _, _, err := c.snapshot(false)
	if err != nil || doc == nil || !strings.Contains(string(doc), `"watermark":"`+at(11).Format(DateHourLayout)+`"`) || strings.Contains(string(doc), e.key) {
		t.Fatalf("checkpoint document %s", doc)
	}

	// A restart restores the watermark, but settles nothing before it lists.
	r := newCheckpoint(2*time.Hour, selection{})
	parsed, err := r.parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.restore(parsed); err != nil {
		t.Fatal(err)
	}
	if !r.isDone(a) || !r.isDone(f) || !r.hourDone(p, at(11)) {
		t.Fatal("restored checkpoint would read done objects again")
	}
	g := hourObj(p, at(12), 0)
	if r.isDone(g) {
		t.Fatal("restored checkpoint counts a new object in an open hour as done")
	}
	r.opened(g)
	r.finished(g)
	if w, _ := r.watermark(p); !w.Equal(at(11)) {
		t.Fatalf("watermark %v moved before the restarted process listed", w)
	}
}

// Restored done keys above the watermark count once a listing settles them.
func TestCheckpointRestoredDoneKeysAdvanceAfterAListing(t *testing.T) {
	p := "currents/x/event_type=a"
	doc := []byte(`{"version":1,"partitions":{"` + p + `":{"watermark":"2026-11-28-05","done":["` + hourObj(p, at(7), 0).key + `"]}}}`)
	c := newCheckpoint(time.Hour, selection{})
	parsed, err := c.parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.restore(parsed); err != nil {
		t.Fatal(err)
	}
	if !c.isDone(hourObj(p, at(7), 0)) {
		t.Fatal("a restored done key is read again")
	}
	c.walked([]string{p}, at(10).Add(time.Minute))
	if w, _ := c.watermark(p); !w.Equal(at(8)) {
		t.Fatalf("watermark %v, want 08", w)
	}
	if doc, _, _, _ := c.snapshot(false); strings.Contains(string(doc), `"done"`) {
		t.Fatalf("done keys below the watermark kept: %s", doc)
	}
}

// A window run never counts hours after its end as done, and its document
// is refused by a run over other hours.
func TestCheckpointWindowBoundsWatermarks(t *testing.T) {
	sel := selection{since: at(3), until: at(5)}
	c := newCheckpoint(time.Hour, sel)
	p := "currents/x/event_type=a"
	c.walked([]string{p}, at(12))
	if w, _ := c.watermark(p); !w.Equal(at(5)) {
		t.Fatalf("watermark %v, want the window's end", w)
	}
	doc, _, _, _ := c.snapshot(false)
	if !strings.Contains(string(doc), `"window":"2026-11-28-03..2026-11-28-05"`) {
		t.Fatalf("document lacks its window: %s", doc)
	}
	if _, err := newCheckpoint(time.Hour, selection{}).parse(doc); err == nil || !strings.Contains(err.Error(), "the hours 2026-11-28-03..2026-11-28-05, and this run reads every hour") {
		t.Fatalf("a full run accepted a window's checkpoint: %v", err)
	}
	if _, err := c.parse(doc); err != nil {
		t.Fatalf("the same window refused its checkpoint: %v", err)
	}
}

// A shard's document records the shard, and other shards refuse it. One
// written before shards were recorded is taken by a single replica (0/1)
// and by a shard whose key names it, and refused by any other.
func TestCheckpointShardBoundsItsDocument(t *testing.T) {
	doc, _, _, _ := newCheckpoint(time.Hour, selection{shard: 0, shards: 2}).snapshot(true)
	if !strings.Contains(string(doc), `"shard":"0/2"`) {
		t.Fatalf("document lacks its shard: %s", doc)
	}
	unrecorded := []byte(`{"version":1,"partitions":{}}`)
	for _, tc := range []struct {
		sel           selection
		keyNamesShard bool
		doc           []byte
		refusal       string
	}{
		{selection{shard: 0, shards: 2}, false, doc, ""},
		{selection{}, false, doc, "written by shard 0/2, and this run is shard 0/1"},
		{selection{shard: 1, shards: 2}, true, doc, "written by shard 0/2, and this run is shard 1/2"},
		{selection{}, false, unrecorded, ""},
		{selection{shard: 1, shards: 2}, true, unrecorded, ""},
		{selection{shard: 1, shards: 2}, false, unrecorded, `records no shard`},
	} {
		c := newCheckpoint(time.Hour, tc.sel)
		c.keyNamesShard = tc.keyNamesShard
		_, err := c.parse(tc.doc)
		if tc.refusal == "" && err != nil || tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)) {
			t.Errorf("shard %s (key names it: %v) on %s: %v, want refusal %q", c.shard, tc.keyNamesShard, tc.doc, err, tc.refusal)
		}
	}
}

// An object that could not be read lets the watermark pass its hour, and
// stays not done, across a restart, until it is read or gone; read, the
// watermark covers it. Its document
// is version 2, which a version that would count it as done refuses.
func TestCheckpointFailedObjectDoesNotHoldTheWatermark(t *testing.T) {
	c := newCheckpoint(time.Hour, selection{})
	p := "currents/x/event_type=a"
	bad, good := hourObj(p, at(6), 0), hourObj(p, at(7), 0)
	c.opened(bad)
	c.opened(good)
	c.failedRead(bad)
	c.finished(good)
	c.walked([]string{p}, at(12))
	if w, _ := c.watermark(p); !w.Equal(at(9)) { // hours up to 09 had closed
		t.Fatalf("watermark %v, want 09: the failed object must not hold it back", w)
	}
	raw, _, _, err := c.snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	restored := newCheckpoint(time.Hour, selection{})
	doc, err := restored.parse(raw)
	if err == nil {
		err = restored.restore(doc)
	}
	if err != nil || doc.Version != checkpointVersionFailed {
		t.Fatalf("restoring %s: version %d, %v", raw, doc.Version, err)
	}
	if !restored.isDone(good) || restored.isDone(bad) {
		t.Fatalf("after a restart: good done %v, failed done %v", restored.isDone(good), restored.isDone(bad))
	}
	if r := restored.retries(); len(r) != 1 || r[0].key != bad.key || r[0].partition != p || !r[0].hour.Equal(at(6)) {
		t.Fatalf("retries %v, want %s", r, bad.key)
	}
	restored.opened(bad)
	restored.finished(bad)
	if !restored.isDone(bad) || len(restored.retries()) != 0 {
		t.Fatal("the failed object, read at last, is still to retry")
	}
	if raw, _, _, _ := restored.snapshot(true); strings.Contains(string(raw), "failed") || !strings.Contains(string(raw), `"version":1`) {
		t.Fatalf("with nothing failed the document is %s, want version 1", raw)
	}
	// Behind the watermark, it needs no done key.
	if raw, _, _, _ := restored.snapshot(true); strings.Contains(string(raw), bad.key) {
		t.Fatalf("the failed object read at last is kept as a done key behind the watermark: %s", raw)
	}
}

// reopen takes back what a listing settled as it passed the hours: to the
// hour before the one it names, or, named none, every hour, as when the
// listing began without a watermark.
func TestCheckpointReopenTakesBackSettledHours(t *testing.T) {
	c := newCheckpoint(time.Hour, selection{})
	p := "currents/x/event_type=a"
	c.walkedTo(p, at(14), at(8))
	c.walkedTo(p, at(14), at(10))
	if w, _ := c.watermark(p); !w.Equal(at(10)) {
		t.Fatalf("watermark %v, want 10", w)
	}
	c.reopen(p, at(9))
	if w, _ := c.watermark(p); !w.Equal(at(8)) || c.isDone(hourObj(p, at(9), 0)) {
		t.Fatalf("watermark %v after reopening from 09, want 08 and hour 09 not done", w)
	}
	c.walkedTo(p, at(14), at(9))
	c.reopen(p, time.Time{})
	if w, ok := c.watermark(p); ok || c.isDone(hourObj(p, at(8), 0)) {
		t.Fatalf("watermark %v after reopening every hour, want none", w)
	}
	if raw, _, _, _ := c.snapshot(true); strings.Contains(string(raw), "watermark") {
		t.Fatalf("document %s, want no watermark", raw)
	}
}

func TestCheckpointRejectsDamagedDocuments(t *testing.T) {
	for _, doc := range []string{`{`, `{"version":3}`, `{"version":1,"partitions":{"p":{"watermark":"soon"}}}`} {
		c := newCheckpoint(time.Hour, selection{})
		parsed, err := c.parse([]byte(doc))
		if err == nil {
			err = c.restore(parsed)
		}
		if err == nil {
			t.Errorf("%s accepted", doc)
		}
	}
}

// memStore is a keyStore in memory, for damaging slots on purpose.
type memStore map[string][]byte

func (m memStore) get(_ context.Context, key string) ([]byte, error) { return m[key], nil }
func (m memStore) put(_ context.Context, key string, v []byte) error {
	m[key] = v
	return nil
}
func (m memStore) describe() string { return "memory" }

func TestSlottedCheckpointSurvivesADamagedSlot(t *testing.T) {
	store := memStore{}
	s := newSlotted(store, "ck.json", nil)
	for i := 1; i <= 3; i++ {
		if err := s.save(context.Background(), []byte(fmt.Sprintf(`{"version":1,"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// Slot a holds save 2, slot b save 3; a crash truncates b.
	store["ck.b.json"] = []byte(`{"version":1,"n":`)
	logs := &bytes.Buffer{}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil)))
	raw, err := newSlotted(store, "ck.json", logger).load(context.Background(), false)
	if err != nil || !strings.Contains(string(raw), `"n":2`) {
		t.Fatalf("loaded %s, %v: want the intact previous save", raw, err)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "ck.b.json") || !strings.Contains(l, "using slot ck.a.json (save 2)") {
		t.Fatalf("the fallback to the older slot is not logged with both keys: %s", l)
	}
	store["ck.a.json"] = []byte(``)
	store["ck.b.json"] = []byte(`{`)
	if _, err := newSlotted(store, "ck.json", nil).load(context.Background(), false); err == nil || !strings.Contains(err.Error(), "no readable checkpoint slot") {
		t.Fatalf("two damaged slots: %v", err)
	}
	if raw, err := newSlotted(memStore{}, "ck.json", nil).load(context.Background(), false); raw != nil || err != nil {
		t.Fatalf("no checkpoint yet: %s, %v", raw, err)
	}
}

// A crash during the first save ever (the claim at start) leaves one slot
// damaged and the other never written: no save held progress, so the input
// starts without a checkpoint, saying so, rather than failing to connect
// for ever. A damaged slot beside a store error is still an error.
func TestSlottedCheckpointFirstSaveCut(t *testing.T) {
	for _, torn := range []string{``, `{"version":1,"own`} {
		logs := &bytes.Buffer{}
		logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(logs, nil)))
		store := memStore{"ck.b.json": []byte(torn)}
		s := newSlotted(store, "ck.json", logger)
		raw, err := s.load(context.Background(), false)
		if raw != nil || err != nil {
			t.Fatalf("%q: loaded %s, %v; want no checkpoint", torn, raw, err)
		}
		if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "ck.b.json") || !strings.Contains(l, "first save was cut short") {
			t.Fatalf("%q: the fresh start is not logged with the slot: %s", torn, l)
		}
		if err := s.save(context.Background(), []byte(`{"version":1,"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if raw, err := newSlotted(store, "ck.json", nil).load(context.Background(), false); err != nil || !strings.Contains(string(raw), `"n":1`) {
			t.Fatalf("%q: after the next save loaded %s, %v", torn, raw, err)
		}
	}
	failing := unreadableA{memStore{"ck.b.json": []byte(`{`)}}
	if _, err := newSlotted(failing, "ck.json", nil).load(context.Background(), false); err == nil {
		t.Fatal("a damaged slot beside one the store could not read was taken for a first save")
	}
}

// unreadableA fails to read ck.a.json.
type unreadableA struct{ memStore }

func (f unreadableA) get(ctx context.Context, key string) ([]byte, error) {
	if key == "ck.a.json" {
		return nil, errors.New("store unreachable")
	}
	return f.memStore.get(ctx, key)
}

// A poll lists the hours after the watermark up to now: a handful in steady
// state, every missed one after a stall, and the partition's directory once
// that would take more listings than listing it whole.
func TestPollListsTheHoursAfterTheWatermark(t *testing.T) {
	now := at(12).Add(30 * time.Minute)
	steady, ok := selection{}.hoursAfter(at(9), now)
	if !ok || len(steady) != 3 || !steady[0].Equal(at(10)) || !steady[2].Equal(at(12)) {
		t.Fatalf("steady state: %v %v, want hours 10 to 12", steady, ok)
	}
	stalled, ok := selection{}.hoursAfter(at(9).Add(-40*time.Hour), now)
	if !ok || len(stalled) != 43 {
		t.Fatalf("after a stall of 40 hours: %d hours, want 43", len(stalled))
	}
	if _, ok := (selection{}).hoursAfter(at(9).Add(-72*time.Hour), now); ok {
		t.Fatal("three days behind, a poll should list the directory instead")
	}
	windowed, ok := selection{since: at(11), until: at(11)}.hoursAfter(at(2), now)
	if !ok || len(windowed) != 1 || !windowed[0].Equal(at(11)) {
		t.Fatalf("window: %v, want hour 11 only", windowed)
	}
}
