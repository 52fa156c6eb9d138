package brazecurrents

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// checkpointStore persists the checkpoint document somewhere durable: a
// Connect cache resource or an object in the bucket.
type checkpointStore interface {
	// load reads the newest checkpoint, nil, nil when there is none yet.
	// A slot the store fails to read is passed over, unless every: then it
	// is an error.
	load(ctx context.Context, every bool) ([]byte, error)
	save(ctx context.Context, doc []byte) error
	describe() string
}

// checkpoint tracks which objects are done and which were listed but not yet
// done, and advances each partition's watermark.
//
// The rule that keeps a late file from being skipped: an hour may pass the
// watermark only once a complete listing that started after the hour closed
// (its end plus late_arrival) has seen it, and every object that listing
// found in it is done. Such hours are "settled" (walked); the watermark is
// the newest settled hour below every open object. Hours without objects
// pass too, so that polls of a quiet event type stay cheap. An object that
// could not be read is failed, not open: it is tried again once a pass by
// its key, and does not hold the watermark back, which would keep every
// object done since in the document and every hour since in each poll.
type checkpoint struct {
	mu            sync.Mutex
	lateArrival   time.Duration
	until         time.Time                       // the watermark never passes the window's end
	watermarks    map[string]time.Time            // partition -> newest hour fully done
	settled       map[string]time.Time            // partition -> newest hour listed after it closed
	done          map[string]map[string]time.Time // partition -> key -> hour
	open          map[string]map[string]time.Time // partition -> key -> hour: listed, not done
	failed        map[string]map[string]time.Time // partition -> key -> hour: not readable so far
	window        string
	shard         string      // i/N, as written in the document
	keyNamesShard bool        // the checkpoint key names the shard (the default key)
	owner         *ownerStamp // stamped on every snapshot
	dirty         bool
	finishes      uint64    // objects done so far, to tell how far the store lags
	newest        time.Time // the newest queue hour with an object done (checkpointDoc.Newest)
	// Late files (checkpoint_late.go): how far behind the watermark settled
	// hours are looked back at (late_lookback; 0: not), the objects done in
	// them by a hash of the key, and the first hour remembered.
	lookback     time.Duration
	now          func() time.Time                         // the input's clock, for the lookback
	recent       map[string]map[time.Time]map[uint64]bool // partition -> hour -> key sums
	recordedFrom map[string]time.Time
}

func newCheckpoint(lateArrival time.Duration, sel selection) *checkpoint {
	return &checkpoint{
		lateArrival:  lateArrival,
		until:        sel.until,
		watermarks:   map[string]time.Time{},
		settled:      map[string]time.Time{},
		done:         map[string]map[string]time.Time{},
		open:         map[string]map[string]time.Time{},
		failed:       map[string]map[string]time.Time{},
		recent:       map[string]map[time.Time]map[uint64]bool{},
		recordedFrom: map[string]time.Time{},
		now:          time.Now,
		window:       sel.window(),
		shard:        fmt.Sprintf("%d/%d", sel.shard, max(sel.shards, 1)),
	}
}

func (c *checkpoint) markLocked(set map[string]map[string]time.Time, partition, key string, hour time.Time) {
	keys := set[partition]
	if keys == nil {
		keys = map[string]time.Time{}
		set[partition] = keys
	}
	keys[key] = hour
}

// watermark is the newest hour of a partition that is fully done.
func (c *checkpoint) watermark(partition string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.watermarks[partition]
	return w, ok
}

// hourDone says whether a whole hour of a partition is behind its watermark.
func (c *checkpoint) hourDone(partition string, hour time.Time) bool {
	w, ok := c.watermark(partition)
	return ok && !hour.After(w)
}

// isDone says whether an object is done: behind its partition's watermark
// (unless it is late there), or recorded as done.
func (c *checkpoint) isDone(o object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, failed := c.failed[o.partition][o.key]; failed {
		return false
	}
	if w, ok := c.watermarks[o.partition]; ok && !o.hour.IsZero() && !o.hour.After(w) {
		return !c.lateLocked(o)
	}
	_, ok := c.done[o.partition][o.key]
	return ok
}

// isFailed says whether an object could not be read so far.
func (c *checkpoint) isFailed(o object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, failed := c.failed[o.partition][o.key]
	return failed
}

// opened records a listed object that is not done: its hour keeps the
// watermark back until it is.
func (c *checkpoint) opened(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markLocked(c.open, o.partition, o.key, o.hour)
}

// finished records an object as done.
func (c *checkpoint) finished(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open[o.partition], o.key)
	c.dropFailedLocked(o)
	// A failed object read at last may lie behind the watermark, which
	// covers it now: its key would stay until the watermark moves again.
	if w, ok := c.watermarks[o.partition]; !ok || o.hour.IsZero() || o.hour.After(w) {
		c.markLocked(c.done, o.partition, o.key, o.hour)
	} else {
		c.rememberLocked(o.partition, o.key, o.hour) // a late one (or a failed one) read
	}
	if o.hour.After(c.newest) {
		c.newest = o.hour
	}
	c.advanceLocked(o.partition)
	c.dirty = true
	c.finishes++
}

// newestDone is the newest queue hour with an object done, here or before
// a restart (zero for none).
func (c *checkpoint) newestDone() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newest
}

// failedRead records a listed object that could not be read: it no longer
// holds the watermark back, and retries names it until it is done or gone.
func (c *checkpoint) failedRead(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open[o.partition], o.key)
	if _, ok := c.failed[o.partition][o.key]; !ok {
		c.markLocked(c.failed, o.partition, o.key, o.hour)
		c.dirty = true
	}
	c.advanceLocked(o.partition)
}

// retries are the objects that could not be read so far, to try again.
func (c *checkpoint) retries() []object {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []object
	for p, keys := range c.failed {
		for key, h := range keys {
			out = append(out, object{key: key, partition: p, hour: h, eventType: ParseObjectKey(key).EventType})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (c *checkpoint) dropFailedLocked(o object) {
	keys := c.failed[o.partition]
	if _, ok := keys[o.key]; !ok {
		return
	}
	delete(keys, o.key)
	if len(keys) == 0 {
		delete(c.failed, o.partition)
	}
	c.dirty = true
}

// finishedCount counts the objects done so far.
func (c *checkpoint) finishedCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finishes
}

// walked records a complete listing of partitions that started at started:
// every hour closed by then was listed after it closed.
func (c *checkpoint) walked(partitions []string, started time.Time) {
	closed := c.closedBy(started)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range partitions {
		c.settleLocked(p, closed)
	}
}

// walkedTo records that a listing of partition that started at started
// has listed all of its hours up to hour: those closed by then settle.
func (c *checkpoint) walkedTo(partition string, started, hour time.Time) {
	if closed := c.closedBy(started); closed.Before(hour) {
		hour = closed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleLocked(partition, hour)
}

// reopen takes back the settling of partition's hours from hour on (all of
// them for a zero hour): a listing is to read them again. The done keys the
// watermark dropped are lost, so their objects are read again (duplicates,
// never a loss).
func (c *checkpoint) reopen(partition string, hour time.Time) {
	below := hour.Add(-time.Hour)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hour.IsZero() {
		if _, ok := c.watermarks[partition]; ok {
			delete(c.watermarks, partition)
			c.dirty = true
		}
		delete(c.settled, partition)
		return
	}
	if s, ok := c.settled[partition]; ok && s.After(below) {
		c.settled[partition] = below
	}
	if w, ok := c.watermarks[partition]; ok && w.After(below) {
		c.watermarks[partition] = below
		c.dirty = true
	}
}

// closedBy is the newest hour closed, late arrivals included, at started:
// a listing that starts then sees every object of it and of those before.
func (c *checkpoint) closedBy(started time.Time) time.Time {
	return started.Add(-c.lateArrival - time.Hour - time.Nanosecond).UTC().Truncate(time.Hour)
}

func (c *checkpoint) settleLocked(partition string, hour time.Time) {
	if s, ok := c.settled[partition]; !ok || hour.After(s) {
		c.settled[partition] = hour
	}
	c.advanceLocked(partition)
}

// forget drops a listed object that no longer exists.
func (c *checkpoint) forget(o object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open[o.partition], o.key)
	c.dropFailedLocked(o)
	c.advanceLocked(o.partition)
}

// advanceLocked moves the watermark to the newest settled hour below every
// open (listed, not done) object of the partition, and forgets the done keys
// it covers.
func (c *checkpoint) advanceLocked(partition string) {
	target, ok := c.settled[partition]
	if !ok {
		return // not listed completely since the start: objects may be unknown
	}
	if !c.until.IsZero() && target.After(c.until) {
		target = c.until
	}
	for _, h := range c.open[partition] {
		if !h.IsZero() && !h.After(target) {
			target = h.Add(-time.Hour)
		}
	}
	if w, ok := c.watermarks[partition]; ok && !target.After(w) {
		return
	}
	c.watermarks[partition] = target
	for key, h := range c.done[partition] {
		if !h.IsZero() && !h.After(target) {
			c.rememberLocked(partition, key, h)
			delete(c.done[partition], key)
		}
	}
	c.forgetRecentLocked(partition)
	c.dirty = true
}

// markDirty asks for another save after a failed one.
func (c *checkpoint) markDirty() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}

// stamp sets the owner written with every snapshot (nil releases it).
func (c *checkpoint) stamp(o *ownerStamp) {
	c.mu.Lock()
	c.owner = o
	c.dirty = true
	c.mu.Unlock()
}
