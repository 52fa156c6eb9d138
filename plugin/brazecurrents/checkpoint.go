package brazecurrents

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// checkpointStore persists the checkpoint document somewhere durable: a
// Connect cache resource or an object in the bucket.
type checkpointStore interface {
	load(ctx context.Context) ([]byte, error) // nil, nil when there is none yet
	save(ctx context.Context, doc []byte) error
	describe() string
}

// checkpointDoc is the persisted form. Per partition (integration and event
// type), every object in an hour up to the watermark is done, and so are the
// listed keys above it. Watermarks keep the document small over years of
// history: only hours that may still change carry keys.
type checkpointDoc struct {
	Version    int                       `json:"version"`
	Partitions map[string]*partitionDone `json:"partitions"`
}

type partitionDone struct {
	Watermark string   `json:"watermark,omitempty"` // YYYY-MM-DD-HH
	Done      []string `json:"done,omitempty"`
}

// checkpoint tracks which objects are done and which were listed but not
// yet done, and advances each partition's watermark over hours that are
// closed (no more files can arrive) and fully done.
type checkpoint struct {
	mu         sync.Mutex
	watermarks map[string]time.Time
	done       map[string]map[string]time.Time // partition -> key -> hour
	open       map[string]map[string]time.Time // partition -> key -> hour: listed, not done
	closedAt   func(hour time.Time) bool
	listing    bool // a walk is under way: an hour may be only partly listed
	dirty      bool
	version    uint64
}

func newCheckpoint(closedAt func(time.Time) bool) *checkpoint {
	return &checkpoint{
		watermarks: map[string]time.Time{},
		done:       map[string]map[string]time.Time{},
		open:       map[string]map[string]time.Time{},
		closedAt:   closedAt,
	}
}

func (c *checkpoint) restore(raw []byte) error {
	var doc checkpointDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("checkpoint is not valid JSON: %w", err)
	}
	if doc.Version != 1 {
		return fmt.Errorf("checkpoint version %d is not supported", doc.Version)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, pd := range doc.Partitions {
		if pd.Watermark != "" {
			w, err := time.Parse(DateHourLayout, pd.Watermark)
			if err != nil {
				return fmt.Errorf("checkpoint watermark %q of %q: %w", pd.Watermark, p, err)
			}
			c.watermarks[p] = w
		}
		for _, key := range pd.Done {
			h, _ := ParseObjectKey(key).Hour()
			c.markLocked(c.done, p, key, h)
		}
	}
	return nil
}

func (c *checkpoint) markLocked(set map[string]map[string]time.Time, partition, key string, hour time.Time) {
	keys := set[partition]
	if keys == nil {
		keys = map[string]time.Time{}
		set[partition] = keys
	}
	keys[key] = hour
}

// hourDone says whether a whole hour of a partition is behind its watermark.
func (c *checkpoint) hourDone(partition string, hour time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.watermarks[partition]
	return ok && !hour.After(w)
}

// listed records a listed object; it reports false when the object is
// already done and must not be read again.
func (c *checkpoint) listed(o object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.watermarks[o.partition]; ok && !o.hour.IsZero() && !o.hour.After(w) {
		return false
	}
	if _, ok := c.done[o.partition][o.key]; ok {
		return false
	}
	c.markLocked(c.open, o.partition, o.key, o.hour)
	return true
}

// finished records an object as done.
func (c *checkpoint) finished(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open[o.partition], o.key)
	c.markLocked(c.done, o.partition, o.key, o.hour)
	if !c.listing {
		c.advanceLocked(o.partition)
	}
	c.dirty = true
	c.version++
}

// startListing holds watermarks still while a walk runs: an hour whose
// listed objects are all done may have more objects not yet listed.
func (c *checkpoint) startListing() {
	c.mu.Lock()
	c.listing = true
	c.mu.Unlock()
}

// endListing lets watermarks move again, over every hour now fully known.
func (c *checkpoint) endListing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing = false
	for p := range c.done {
		c.advanceLocked(p)
	}
}

// forget drops a listed object that no longer exists.
func (c *checkpoint) forget(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open[o.partition], o.key)
}

// advanceLocked moves the watermark to the newest closed hour below every
// open (listed, not done) object of the partition, and forgets the done keys
// it covers.
func (c *checkpoint) advanceLocked(partition string) {
	var limit time.Time // the watermark may not reach the oldest open hour
	for _, h := range c.open[partition] {
		if h.IsZero() {
			continue
		}
		if limit.IsZero() || h.Before(limit) {
			limit = h
		}
	}
	w := c.watermarks[partition]
	moved := false
	for _, h := range c.done[partition] {
		if h.IsZero() || !h.After(w) || !c.closedAt(h) || (!limit.IsZero() && !h.Before(limit)) {
			continue
		}
		w, moved = h, true
	}
	if !moved {
		return
	}
	c.watermarks[partition] = w
	for key, h := range c.done[partition] {
		if !h.IsZero() && !h.After(w) {
			delete(c.done[partition], key)
		}
	}
	c.dirty = true
}

// snapshot renders the document if it changed since the last snapshot.
func (c *checkpoint) snapshot() ([]byte, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil, c.version, false
	}
	doc := checkpointDoc{Version: 1, Partitions: map[string]*partitionDone{}}
	part := func(p string) *partitionDone {
		if doc.Partitions[p] == nil {
			doc.Partitions[p] = &partitionDone{}
		}
		return doc.Partitions[p]
	}
	for p, w := range c.watermarks {
		part(p).Watermark = w.Format(DateHourLayout)
	}
	for p, keys := range c.done {
		for key := range keys {
			part(p).Done = append(part(p).Done, key)
		}
		if pd := doc.Partitions[p]; pd != nil {
			sort.Strings(pd.Done)
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, 0, false
	}
	c.dirty = false
	return raw, c.version, true
}

// markDirty asks for another save after a failed one.
func (c *checkpoint) markDirty() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}
