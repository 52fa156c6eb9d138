package brazecurrents

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

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
	// The objects done in the settled hours of the last late_lookback (from
	// now), as base64 of their keys' 8-byte sums by hour, and the
	// first hour remembered: a version without them ignores them, and
	// with a document without them late files are looked for only in the
	// hours that settle from then on (checkpoint_late.go).
	Recent   map[string]string `json:"recent,omitempty"`
	Recorded string            `json:"recorded,omitempty"` // YYYY-MM-DD-HH
}

// Document versions: a document with failed keys is version 2, so that a
// version before them, which would count them as done behind the watermark,
// refuses it instead of skipping them.
const (
	checkpointVersion       = 1
	checkpointVersionFailed = 2
)

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
		if err := c.restoreRecentLocked(p, pd); err != nil {
			return err
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
		c.snapshotRecentLocked(p, part(p))
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
