package brazecurrents

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"time"
)

// Late files: Braze may write an object into an hour after that hour
// settled (a delay on its side longer than late_arrival). The watermark
// counts the whole hour as done, and the listings that prune it would never
// list that object. So the checkpoint remembers, by a hash of the key, the
// objects done in the settled hours of the last late_lookback (before now,
// on the input's clock: a backfill of older hours remembers nothing, as
// Braze writes into recent hours only); the listing that lists a partition's directory (every hour)
// lists those hours again, and an object of theirs it does not remember is
// late: counted, logged and read.

// rememberLocked remembers an object done in an hour its partition settled,
// while the hour is within the lookback. Before recordedFrom nothing is
// remembered: those hours settled before this was kept (an older document).
func (c *checkpoint) rememberLocked(partition, key string, hour time.Time) {
	if c.lookback <= 0 || hour.IsZero() || !c.recordedLocked(partition, hour) {
		return
	}
	hours := c.recent[partition]
	if hours == nil {
		hours = map[time.Time]map[uint64]bool{}
		c.recent[partition] = hours
	}
	if hours[hour] == nil {
		hours[hour] = map[uint64]bool{}
	}
	hours[hour][keySum(key)] = true
}

// recordedLocked says whether the objects done in hour are remembered: the
// hour is within the lookback before now, and not before the hours this
// checkpoint began to remember; or it is ahead of the clock.
func (c *checkpoint) recordedLocked(partition string, hour time.Time) bool {
	if c.lookback <= 0 {
		return false
	}
	if c.aheadLocked(hour) {
		return true
	}
	if from, ok := c.recordedFrom[partition]; ok && hour.Before(from) {
		return false
	}
	return hour.After(c.lookbackStart())
}

// aheadLocked says whether hour had not closed by now. Behind a watermark,
// it settled on a clock ahead of this one (a clock that jumped forward and
// back, or this host's clock behind the one that saved the document), and
// Braze may still write into it on time: it is looked back at, whatever the
// document remembers. A clock days ahead settled such hours out of its
// lookback, whose start the document then recorded: they were never listed
// again, and the files Braze wrote into them on time were lost.
func (c *checkpoint) aheadLocked(hour time.Time) bool { return hour.After(c.closedBy(c.now())) }

// lookbackStart is the end of the last hour out of the lookback: hours
// after it are looked back at.
func (c *checkpoint) lookbackStart() time.Time { return c.now().Add(-c.lookback) }

// keptLocked says whether the objects done in hour are kept in memory and
// in the document: the hour is within the lookback, or ahead of the clock.
func (c *checkpoint) keptLocked(hour time.Time) bool {
	return hour.After(c.lookbackStart()) || c.aheadLocked(hour)
}

// ahead is the partition whose watermark is furthest ahead of the clock
// (aheadLocked), and that watermark; ok is false when none is.
func (c *checkpoint) ahead() (partition string, watermark time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, w := range c.watermarks {
		if c.aheadLocked(w) && w.After(watermark) {
			partition, watermark, ok = p, w, true
		}
	}
	return partition, watermark, ok
}

// forgetRecentLocked drops the hours of partition that fell out of the
// lookback, and remembers from the first hour in it on, as a restart on
// the document would: the hours it forgot when the clock ran ahead are not
// all taken as late once the clock is set back.
func (c *checkpoint) forgetRecentLocked(partition string) {
	for h := range c.recent[partition] {
		if !c.keptLocked(h) {
			delete(c.recent[partition], h)
		}
	}
	if from := c.lookbackStart().Truncate(time.Hour).Add(time.Hour); c.lookback > 0 && from.After(c.recordedFrom[partition]) {
		c.recordedFrom[partition] = from
	}
}

// lateLocked says whether o lies in an hour its partition settled, within
// the lookback, and was not done there: it landed after the listing that
// settled its hour.
func (c *checkpoint) lateLocked(o object) bool {
	w, ok := c.watermarks[o.partition]
	if !ok || o.hour.IsZero() || o.hour.After(w) || !c.recordedLocked(o.partition, o.hour) {
		return false
	}
	return !c.recent[o.partition][o.hour][keySum(o.key)]
}

// isLate says whether o is a late object: in a settled hour, not done.
func (c *checkpoint) isLate(o object) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lateLocked(o)
}

// lookingBack says whether hour of partition is behind its watermark and
// within the lookback, where a listing may find late objects.
func (c *checkpoint) lookingBack(partition string, hour time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.watermarks[partition]
	return ok && !hour.After(w) && c.recordedLocked(partition, hour)
}

// keySum is the hash an object's key is remembered by: 8 bytes in the
// document rather than a key of about 150.
func keySum(key string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, key)
	return h.Sum64()
}

// restoreRecentLocked reads a partition's remembered hours. A document
// written without them (before they were kept, or with late_lookback 0)
// remembers nothing up to its watermark: the hours up to it are not looked
// back at, rather than every object in them taken as late.
func (c *checkpoint) restoreRecentLocked(partition string, pd *partitionDone) error {
	if c.lookback <= 0 {
		return nil
	}
	if pd.Recorded == "" {
		if w, ok := c.watermarks[partition]; ok {
			c.recordedFrom[partition] = w.Add(time.Hour)
		}
		return nil
	}
	from, err := time.Parse(DateHourLayout, pd.Recorded)
	if err != nil {
		return fmt.Errorf("checkpoint recorded hour %q of %q: %w", pd.Recorded, partition, err)
	}
	c.recordedFrom[partition] = from
	for hour, sums := range pd.Recent {
		h, err := time.Parse(DateHourLayout, hour)
		if err != nil {
			return fmt.Errorf("checkpoint recent hour %q of %q: %w", hour, partition, err)
		}
		raw, err := base64.RawStdEncoding.DecodeString(sums)
		if err != nil || len(raw)%8 != 0 {
			return fmt.Errorf("checkpoint recent keys of hour %q of %q are not 8-byte sums in base64", hour, partition)
		}
		set := map[uint64]bool{}
		for i := 0; i < len(raw); i += 8 {
			set[binary.BigEndian.Uint64(raw[i:])] = true
		}
		if c.recent[partition] == nil {
			c.recent[partition] = map[time.Time]map[uint64]bool{}
		}
		c.recent[partition][h] = set
	}
	return nil
}

// snapshotRecentLocked writes a partition's remembered hours, and the hour
// from which it remembers (the oldest in the lookback, when it always did).
func (c *checkpoint) snapshotRecentLocked(partition string, pd *partitionDone) {
	w, ok := c.watermarks[partition]
	if c.lookback <= 0 || !ok {
		return
	}
	from := c.lookbackStart().Truncate(time.Hour).Add(time.Hour)
	if f, ok := c.recordedFrom[partition]; ok && f.After(from) {
		from = f
	}
	pd.Recorded = from.Format(DateHourLayout)
	for h, set := range c.recent[partition] {
		if len(set) == 0 || h.After(w) || !c.keptLocked(h) {
			continue
		}
		sums := slices.Sorted(maps.Keys(set))
		raw := make([]byte, 0, 8*len(sums))
		for _, s := range sums {
			raw = binary.BigEndian.AppendUint64(raw, s)
		}
		if pd.Recent == nil {
			pd.Recent = map[string]string{}
		}
		pd.Recent[h.Format(DateHourLayout)] = base64.RawStdEncoding.EncodeToString(raw)
	}
}
