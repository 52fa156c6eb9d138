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
// listed keys above it, except the failed keys: objects that could not be
// read, tried again at every pass. Watermarks keep the document small over
// years of history: only hours that may still change carry keys.
type checkpointDoc struct {
	Version    int                       `json:"version"`
	Window     string                    `json:"window,omitempty"` // the since..until the watermarks count within; "" for every hour
	Shard      string                    `json:"shard,omitempty"`  // the i/N whose objects the watermarks count; "" if written before it was recorded
	Owner      *ownerStamp               `json:"owner,omitempty"`  // the process holding the checkpoint (checkpoint_saver.go)
	Partitions map[string]*partitionDone `json:"partitions"`
	// The newest queue hour with an object done: the lag gauge starts from
	// it after a restart, while nothing new gets done (a stalled pipeline,
	// Currents no longer writing), where watermarks pass empty hours too.
	Newest string `json:"newest,omitempty"` // YYYY-MM-DD-HH
}

type partitionDone struct {
	Watermark string   `json:"watermark,omitempty"` // YYYY-MM-DD-HH
	Done      []string `json:"done,omitempty"`
	Failed    []string `json:"failed,omitempty"` // not done, whatever the watermark says
}

// Document versions: a document with failed keys is version 2, so that a
// version before them, which would count them as done behind the watermark,
// refuses it instead of skipping them.
const (
	checkpointVersion       = 1
	checkpointVersionFailed = 2
)

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
}

func newCheckpoint(lateArrival time.Duration, sel selection) *checkpoint {
	return &checkpoint{
		lateArrival: lateArrival,
		until:       sel.until,
		watermarks:  map[string]time.Time{},
		settled:     map[string]time.Time{},
		done:        map[string]map[string]time.Time{},
		open:        map[string]map[string]time.Time{},
		failed:      map[string]map[string]time.Time{},
		window:      sel.window(),
		shard:       fmt.Sprintf("%d/%d", sel.shard, max(sel.shards, 1)),
	}
}

// parse reads a stored document and checks it was written for the same
// hours and the same shard: a watermark counts the hours before it as done,
// which is true only of the window and the shard's objects that wrote it.
func (c *checkpoint) parse(raw []byte) (*checkpointDoc, error) {
	var doc checkpointDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("checkpoint is not valid JSON: %w", err)
	}
	if doc.Version != checkpointVersion && doc.Version != checkpointVersionFailed {
		return nil, fmt.Errorf("checkpoint version %d is not supported", doc.Version)
	}
	if doc.Window != c.window {
		return nil, fmt.Errorf("checkpoint was written by a run over %s, and this run reads %s: its watermarks would count hours this run skips as done",
			windowName(doc.Window), windowName(c.window))
	}
	// A document from before the shard was recorded is taken as this
	// shard's only where that cannot skip objects unread: a single replica
	// (as before), or a key that names the shard.
	if doc.Shard == "" && c.shard != "0/1" && !c.keyNamesShard {
		return nil, fmt.Errorf("checkpoint records no shard (written before shards were recorded), and this run is shard %s on a checkpoint key that does not name it: "+
			"if another shard wrote it, its watermarks would count this shard's objects as done unread; if shard %s wrote it, add \"shard\":\"%s\" to both slots",
			c.shard, c.shard, c.shard)
	}
	if doc.Shard != "" && doc.Shard != c.shard {
		return nil, fmt.Errorf("checkpoint was written by shard %s, and this run is shard %s: its watermarks would count objects its writer did not read as done",
			doc.Shard, c.shard)
	}
	return &doc, nil
}

func (c *checkpoint) restore(doc *checkpointDoc) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if doc.Newest != "" {
		h, err := time.Parse(DateHourLayout, doc.Newest)
		if err != nil {
			return fmt.Errorf("checkpoint newest hour %q: %w", doc.Newest, err)
		}
		c.newest = h
	}
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
			if h.After(c.newest) { // a document written before Newest
				c.newest = h
			}
		}
		for _, key := range pd.Failed {
			h, _ := ParseObjectKey(key).Hour()
			c.markLocked(c.failed, p, key, h)
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

// isDone says whether an object is done: behind its partition's watermark,
// or recorded as done.
func (c *checkpoint) isDone(o object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, failed := c.failed[o.partition][o.key]; failed {
		return false
	}
	if w, ok := c.watermarks[o.partition]; ok && !o.hour.IsZero() && !o.hour.After(w) {
		return true
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

// reopen takes back the settling of partition's hours from hour on: a
// listing is to read them again. The done keys the watermark dropped are
// lost, so their objects are read again (duplicates, never a loss).
func (c *checkpoint) reopen(partition string, hour time.Time) {
	below := hour.Add(-time.Hour)
	c.mu.Lock()
	defer c.mu.Unlock()
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
			delete(c.done[partition], key)
		}
	}
	c.dirty = true
}

// snapshot renders the document if it changed since the last snapshot, or
// always when force is set (a lease renewal), with the count of objects done
// that it holds and the expiry of the lease it carries (zero for none); nil
// when it did not change.
func (c *checkpoint) snapshot(force bool) ([]byte, uint64, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty && !force {
		return nil, 0, time.Time{}, nil
	}
	doc := checkpointDoc{Version: checkpointVersion, Window: c.window, Shard: c.shard, Owner: c.owner, Partitions: map[string]*partitionDone{}}
	part := func(p string) *partitionDone {
		if doc.Partitions[p] == nil {
			doc.Partitions[p] = &partitionDone{}
		}
		return doc.Partitions[p]
	}
	if !c.newest.IsZero() {
		doc.Newest = c.newest.Format(DateHourLayout)
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
	for p, keys := range c.failed {
		for key := range keys {
			part(p).Failed = append(part(p).Failed, key)
		}
		sort.Strings(part(p).Failed)
		doc.Version = checkpointVersionFailed
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, 0, time.Time{}, fmt.Errorf("rendering the checkpoint: %w", err)
	}
	c.dirty = false
	var lease time.Time
	if c.owner != nil {
		lease = c.owner.Expires
	}
	return raw, c.finishes, lease, nil
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
