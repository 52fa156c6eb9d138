package brazecurrents

import (
	"strings"
	"testing"
	"time"
)

// lateNow is the clock of the checkpoints restored(): the lookback runs
// back from it.
var lateNow = at(10)

// restored is a checkpoint with late_lookback lookback restored from doc.
func restored(t *testing.T, doc []byte, lookback time.Duration) *checkpoint {
	t.Helper()
	c := newCheckpoint(time.Hour, selection{})
	c.lookback = lookback
	c.now = func() time.Time { return lateNow }
	parsed, err := c.parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.restore(parsed); err != nil {
		t.Fatal(err)
	}
	return c
}

// A document written before late files were looked for (no "recent", no
// "recorded") has every hour up to its watermark taken as done, as before:
// none of their objects counts as late, and no listing lists them again.
// The hours that settle from then on are remembered, an object done in them
// is not late, another one is, and a restart on the new document (which a
// version before this one reads too: it ignores those fields) keeps that.
// With late_lookback 0 nothing is remembered and nothing is late.
func TestCheckpointLateFilesAcrossDocumentVersions(t *testing.T) {
	p := "currents/x/event_type=a"
	old := []byte(`{"version":1,"partitions":{"` + p + `":{"watermark":"2026-11-28-05"}}}`)
	c := restored(t, old, 24*time.Hour)
	before := hourObj(p, at(5), 0)
	if c.isLate(before) || !c.isDone(before) || c.lookingBack(p, at(5)) {
		t.Fatalf("an object of hour 5, settled before the document remembered objects: late %v, done %v, looked back at %v; want done, not late, not listed again",
			c.isLate(before), c.isDone(before), c.lookingBack(p, at(5)))
	}
	read := hourObj(p, at(7), 0)
	c.opened(read)
	c.finished(read)
	c.walked([]string{p}, at(10)) // hours up to 7 closed (late_arrival 1h)
	if w, _ := c.watermark(p); !w.Equal(at(7)) {
		t.Fatalf("watermark %v, want hour 7", w)
	}
	late := hourObj(p, at(7), 1)
	if !c.lookingBack(p, at(6)) || c.isLate(read) || !c.isLate(late) || c.isDone(late) {
		t.Fatalf("hour 7 settled with one object read: looked back at %v, read one late %v, another late %v (done %v); want looked back at, only the other late",
			c.lookingBack(p, at(6)), c.isLate(read), c.isLate(late), c.isDone(late))
	}
	doc, _, _, err := c.snapshot(true)
	if err != nil || !strings.Contains(string(doc), `"recorded":"2026-11-28-06"`) {
		t.Fatalf("document %s (%v): want it to remember from hour 6", doc, err)
	}
	r := restored(t, doc, 24*time.Hour)
	if r.isLate(read) || !r.isLate(late) || r.isLate(before) {
		t.Fatalf("after a restart: read one late %v, another late %v, hour 5's late %v; want only the other late", r.isLate(read), r.isLate(late), r.isLate(before))
	}
	// A stop while the late one is read leaves it late: the next process
	// reads it again. Read, it is remembered, and saved.
	r.opened(late)
	doc, _, _, _ = r.snapshot(true)
	if again := restored(t, doc, 24*time.Hour); !again.isLate(late) {
		t.Fatalf("a late object stopped while read is no longer late after a restart: %s", doc)
	}
	r.finished(late)
	if w, _ := r.watermark(p); r.isLate(late) || !w.Equal(at(7)) {
		t.Fatalf("late object read: still late %v, watermark %v; want not late, hour 7", r.isLate(late), w)
	}
	doc, _, _, _ = r.snapshot(true)
	if again := restored(t, doc, 24*time.Hour); again.isLate(late) {
		t.Fatalf("a late object read counts as late again after a restart: %s", doc)
	}
	// Hours that fall out of the lookback are forgotten.
	lateNow = at(10).Add(30 * time.Hour)
	defer func() { lateNow = at(10) }()
	r.walked([]string{p}, lateNow)
	if doc, _, _, _ = r.snapshot(true); strings.Contains(string(doc), `"recent"`) || r.lookingBack(p, at(7)) {
		t.Fatalf("hour 7, 30 hours behind the watermark, still remembered or looked back at: %s", doc)
	}
	off := restored(t, doc, 0)
	if off.isLate(hourObj(p, at(7).Add(30*time.Hour), 5)) {
		t.Fatal("late_lookback 0 counts an object as late")
	}
	if doc, _, _, _ = off.snapshot(true); strings.Contains(string(doc), "recent") || strings.Contains(string(doc), "recorded") {
		t.Fatalf("late_lookback 0 writes what it does not keep: %s", doc)
	}
}

// A backfill of hours older than the lookback remembers none of their
// objects: Braze writes into recent hours only, so no late file can land
// there. Counted from the watermark, the lookback kept the key sums of the
// day behind it through the whole backfill, in every save (about 11 bytes
// an object: 150 KB a save for 50 types writing 12 objects an hour).
func TestCheckpointBackfillRemembersNothingOlderThanTheLookback(t *testing.T) {
	p := "currents/x/event_type=a"
	lateNow = at(10).Add(7 * 24 * time.Hour)
	defer func() { lateNow = at(10) }()
	c := restored(t, []byte(`{"version":1}`), 24*time.Hour)
	for h := 1; h <= 8; h++ {
		o := hourObj(p, at(h), 0)
		c.opened(o)
		c.finished(o)
	}
	c.walked([]string{p}, at(10))
	if w, _ := c.watermark(p); !w.Equal(at(7)) {
		t.Fatalf("watermark %v, want hour 7 (late_arrival 1h)", w)
	}
	doc, _, _, err := c.snapshot(true)
	if err != nil || strings.Contains(string(doc), `"recent"`) || c.lookingBack(p, at(7)) {
		t.Fatalf("a week-old backfill remembered its objects or looks back at them: %s (%v)", doc, err)
	}
	// The hours of the last day are remembered as they settle.
	recent := hourObj(p, lateNow.Add(-3*time.Hour).Truncate(time.Hour), 0)
	c.opened(recent)
	c.finished(recent)
	c.walked([]string{p}, lateNow)
	if doc, _, _, _ = c.snapshot(true); !strings.Contains(string(doc), `"recent"`) || c.isLate(recent) {
		t.Fatalf("an object of 3 hours ago, read and settled, not remembered: %s", doc)
	}
}

// A document saved while the clock ran days ahead: its watermark is days
// ahead of this clock, and it remembers nothing before the lookback's start
// on that clock. The hours behind the watermark that have not closed by this
// clock (after hour 7 here, late_arrival 1h) are looked back at all the same:
// an object Braze writes into one on time is late, read, then remembered,
// across a restart too. Closed hours before "recorded" are not looked back at
// (their objects are not known). Before, no hour before "recorded" was, and
// the files Braze wrote into them were never read. With late_lookback 0,
// nothing is.
func TestCheckpointLooksBackAtHoursAheadOfTheClock(t *testing.T) {
	p := "currents/x/event_type=a"
	doc := []byte(`{"version":1,"partitions":{"` + p + `":{"watermark":"2026-11-30-08","recorded":"2026-11-29-09"}}}`)
	c := restored(t, doc, 24*time.Hour)
	onTime, closed := hourObj(p, at(9), 0), hourObj(p, at(6), 0)
	if !c.lookingBack(p, at(9)) || !c.isLate(onTime) || c.isDone(onTime) {
		t.Fatalf("hour 9, not closed by the clock: looked back at %v, an object late %v, done %v; want looked back at, late, not done",
			c.lookingBack(p, at(9)), c.isLate(onTime), c.isDone(onTime))
	}
	if c.lookingBack(p, at(6)) || c.isLate(closed) || !c.isDone(closed) {
		t.Fatalf("hour 6, closed: looked back at %v, late %v, done %v; want done only", c.lookingBack(p, at(6)), c.isLate(closed), c.isDone(closed))
	}
	if got, w, ok := c.ahead(); !ok || got != p || !w.Equal(at(8).Add(48*time.Hour)) {
		t.Fatalf("ahead: %q %v %v; want %s at 2026-11-30-08", got, w, ok, p)
	}
	c.opened(onTime)
	c.finished(onTime)
	saved, _, _, err := c.snapshot(true)
	if err != nil || c.isLate(onTime) {
		t.Fatalf("the late object read is still late (%v)", err)
	}
	if again := restored(t, saved, 24*time.Hour); again.isLate(onTime) || !again.isLate(hourObj(p, at(9), 1)) {
		t.Fatalf("after a restart the object read is late %v, another not; document %s", again.isLate(onTime), saved)
	}
	if off := restored(t, doc, 0); off.lookingBack(p, at(9)) || off.isLate(onTime) {
		t.Fatal("late_lookback 0 looks back at an hour ahead of the clock")
	}
}
