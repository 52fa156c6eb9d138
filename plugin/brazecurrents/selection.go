package brazecurrents

import (
	"hash/fnv"
	"io"
	"path"
	"strings"
	"time"
)

// selection says which objects a walk yields.
type selection struct {
	include, exclude []string  // event type patterns (path.Match syntax)
	since, until     time.Time // queue hour window, inclusive; zero means open
	shard, shards    int       // this replica takes the objects whose key hashes to shard
}

func (s selection) wantsType(eventType string) bool {
	if matchAny(s.exclude, eventType) {
		return false
	}
	return len(s.include) == 0 || matchAny(s.include, eventType)
}

func (s selection) wantsHour(h time.Time) bool {
	return (s.since.IsZero() || !h.Before(s.since)) && (s.until.IsZero() || !h.After(s.until))
}

// ownsKey splits objects between replicas by a hash of the key: no overlap,
// no coordination, and stable across restarts.
func (s selection) ownsKey(key string) bool {
	if s.shards <= 1 {
		return true
	}
	h := fnv.New32a()
	_, _ = io.WriteString(h, key)
	return int(h.Sum32()%uint32(s.shards)) == s.shard
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// objectAt is the object key names, if the selection wants it: an .avro key
// of this shard, of a wanted event type and hour.
func (s selection) objectAt(key string) (object, bool) {
	if !strings.HasSuffix(key, ".avro") || !s.ownsKey(key) {
		return object{}, false
	}
	k := ParseObjectKey(key)
	o := object{key: key, partition: path.Dir(key), eventType: k.EventType}
	if k.EventType != "" && !s.wantsType(k.EventType) {
		return object{}, false
	}
	// The partition the walk lists it under: its event_type= directory, as
	// in Braze's layout, whatever levels come between it and date=.
	if p := partitionOf(path.Dir(key)); p != "" {
		o.partition = p
	} else if before, _, ok := strings.Cut(key, "/date="); ok {
		o.partition = before
	}
	if h, ok := k.Hour(); ok {
		if !s.wantsHour(h) {
			return object{}, false
		}
		o.hour = h
	}
	return o, true
}

// maxHourListings bounds the date= directories a poll lists one by one for
// a partition; further behind its watermark, one listing of the partition's
// directory (pruned below the watermark) costs less.
const maxHourListings = 48

// hoursAfter are the queue hours from the one after watermark to now, within
// the selection: the only ones of a partition that can hold objects not yet
// done. ok is false when listing them one by one would cost more than
// listing the partition.
func (s selection) hoursAfter(watermark, now time.Time) ([]time.Time, bool) {
	from, to := watermark.Add(time.Hour), now.UTC().Truncate(time.Hour)
	if !s.since.IsZero() && s.since.After(from) {
		from = s.since
	}
	if !s.until.IsZero() && s.until.Before(to) {
		to = s.until
	}
	if to.Sub(from) >= maxHourListings*time.Hour {
		return nil, false
	}
	var out []time.Time
	for h := from; !h.After(to); h = h.Add(time.Hour) {
		out = append(out, h)
	}
	return out, true
}

// window names the hours a selection reads, for the checkpoint: "" for all.
func (s selection) window() string {
	if s.since.IsZero() && s.until.IsZero() {
		return ""
	}
	bound := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(DateHourLayout)
	}
	return bound(s.since) + ".." + bound(s.until)
}

// windowName describes a window in messages.
func windowName(window string) string {
	if window == "" {
		return "every hour"
	}
	return "the hours " + window
}
