package brazecurrents

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func hourObj(partition string, hour time.Time, n int) object {
	return object{key: partition + "/date=" + hour.Format(DateHourLayout) + "/f" + string(rune('a'+n)) + ".avro", partition: partition, hour: hour}
}

func TestCheckpointWatermarkCoversOnlyClosedFullyDoneHours(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	closed := func(h time.Time) bool { return now.Sub(h.Add(time.Hour)) > 2*time.Hour }
	c := newCheckpoint(closed)
	p := "currents/x/event_type=a"
	h1, h2, h3 := now.Add(-6*time.Hour), now.Add(-5*time.Hour), now.Add(-time.Hour) // h3 is still open

	c.startListing()
	a, b, d, e := hourObj(p, h1, 0), hourObj(p, h2, 0), hourObj(p, h2, 1), hourObj(p, h3, 0)
	for _, o := range []object{a, b} {
		if !c.listed(o) {
			t.Fatal("new object refused")
		}
	}
	c.finished(a)
	c.finished(b)
	// h2 may have objects not yet listed: no watermark while listing.
	if c.hourDone(p, h1) {
		t.Fatal("watermark moved during a listing")
	}
	c.listed(d)
	c.listed(e)
	c.endListing()
	if !c.hourDone(p, h1) || c.hourDone(p, h2) {
		t.Fatal("watermark must cover h1, not h2 (object d is open)")
	}
	c.finished(d)
	c.finished(e)
	if !c.hourDone(p, h2) || c.hourDone(p, h3) {
		t.Fatal("watermark must cover h2 but not the open hour h3")
	}
	doc, _, changed := c.snapshot()
	if !changed || !strings.Contains(string(doc), `"watermark":"`+h2.Format(DateHourLayout)+`"`) || !strings.Contains(string(doc), e.key) || strings.Contains(string(doc), a.key) {
		t.Fatalf("checkpoint document %s", doc)
	}

	// A restart restores both the watermark and the done keys above it.
	r := newCheckpoint(closed)
	if err := r.restore(doc); err != nil {
		t.Fatal(err)
	}
	if r.listed(a) || r.listed(d) || r.listed(e) || !r.hourDone(p, h2) {
		t.Fatal("restored checkpoint would read done objects again")
	}
	if !r.listed(hourObj(p, h3, 5)) {
		t.Fatal("restored checkpoint refuses a new object in an open hour")
	}
}

func TestCheckpointRejectsDamagedDocuments(t *testing.T) {
	for _, doc := range []string{`{`, `{"version":2}`, `{"version":1,"partitions":{"p":{"watermark":"soon"}}}`} {
		if err := newCheckpoint(func(time.Time) bool { return true }).restore([]byte(doc)); err == nil {
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
	s := newSlotted(store, "ck.json")
	for i := 1; i <= 3; i++ {
		if err := s.save(context.Background(), []byte(fmt.Sprintf(`{"version":1,"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// Slot a holds save 2, slot b save 3; a crash truncates b.
	store["ck.b.json"] = []byte(`{"version":1,"n":`)
	raw, err := newSlotted(store, "ck.json").load(context.Background())
	if err != nil || !strings.Contains(string(raw), `"n":2`) {
		t.Fatalf("loaded %s, %v: want the intact previous save", raw, err)
	}
	store["ck.a.json"] = []byte(``)
	store["ck.b.json"] = []byte(`{`)
	if _, err := newSlotted(store, "ck.json").load(context.Background()); err == nil || !strings.Contains(err.Error(), "no readable checkpoint slot") {
		t.Fatalf("two damaged slots: %v", err)
	}
	if raw, err := newSlotted(memStore{}, "ck.json").load(context.Background()); raw != nil || err != nil {
		t.Fatalf("no checkpoint yet: %s, %v", raw, err)
	}
}
