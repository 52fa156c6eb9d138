package brazecurrents

import (
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
)

// Why an object under an event_type= directory is not read: the values of
// braze_currents_objects_skipped's reason label.
const (
	skipCompressed = "compressed" // .avro.gz and the like: recompressed after Braze wrote it
	skipPartial    = "partial"    // .tmp and the like: an upload or copy not finished, or abandoned
	skipOther      = "other"      // any other name: not an object Braze writes
)

var skipReasons = []string{skipCompressed, skipPartial, skipOther}

// notAvroWhy ends the warnings of skipped objects: why, and what to do
// (notAvroListed, for a listing).
const notAvroWhy = "the input reads only .avro objects, as Braze writes them, so a copy recompressed by a lifecycle rule or a copy tool (.avro.gz) or an unfinished upload (.tmp) is neither read nor counted as done and its events are not sent; restore such objects as .avro, uncompressed"

// notAvroListed is what to do after a listing skipped objects: an hour
// passes the watermark late_arrival after it ends, whatever it skipped, and
// no poll lists it again.
func (in *currentsInput) notAvroListed() string {
	return fmt.Sprintf("%s, within %s (%v) after their hour ends, to have a poll read them; later, only a replay does: a new %s.%s, with %s and %s around their hours",
		notAvroWhy, inFieldLateArrival, in.conf.lateArrival, inFieldCheckpoint, inFieldCheckpointKey, inFieldSince, inFieldUntil)
}

// maxSkippedTracked bounds the skipped keys remembered between passes (by a
// hash each) so that the metric counts an object once, not at every poll
// that lists it again. Past it, a pass's objects are only counted, by
// reason, and the metric counts how many more there are than the last
// passes found.
const maxSkippedTracked = 1 << 16

// skippedPass is what the walks since reset skipped for not being .avro.
type skippedPass struct {
	own       []string       // keys the input writes in the bucket itself (its checkpoint), never counted
	byReason  map[string]int // how many, by reason
	example   string         // the first of them
	sums      map[uint64]string
	untracked map[string]int // by reason, those past maxSkippedTracked, not in sums
}

func (p *skippedPass) reset() { *p = skippedPass{own: p.own} }

// note counts key, which the selection does not read, if it is skipped for
// not being .avro.
func (p *skippedPass) note(sel selection, key string) {
	reason := sel.skipReason(key)
	if reason == "" || slices.Contains(p.own, key) {
		return
	}
	if p.byReason == nil {
		p.byReason, p.sums, p.untracked = map[string]int{}, map[uint64]string{}, map[string]int{}
	}
	if p.example == "" {
		p.example = key
	}
	p.byReason[reason]++
	if len(p.sums) >= maxSkippedTracked {
		p.untracked[reason]++
		return
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, key)
	p.sums[h.Sum64()] = reason
}

func (p *skippedPass) total() int {
	n := 0
	for _, c := range p.byReason {
		n += c
	}
	return n
}

// skipReason is why the selection does not read key although it would were
// it an .avro object: "" for an .avro key, a folder marker, a key outside
// every event_type= directory (other data may share the bucket: another
// tool's, the input's checkpoint on its default key) and a key of an event
// type, hour or shard the selection leaves out anyway.
func (s selection) skipReason(key string) string {
	if strings.HasSuffix(key, ".avro") || strings.HasSuffix(key, "/") || partitionOf(path.Dir(key)) == "" {
		return ""
	}
	k := ParseObjectKey(key)
	if !s.wantsType(k.EventType) || !s.ownsKey(key) {
		return ""
	}
	if h, ok := k.Hour(); ok && !s.wantsHour(h) {
		return ""
	}
	switch strings.ToLower(path.Ext(key)) {
	case ".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd", ".lz4", ".snappy", ".sz", ".z", ".zip", ".br":
		return skipCompressed
	case ".tmp", ".temp", ".part", ".partial", ".filepart", ".crdownload", ".inprogress", "._copying_", ".upload":
		return skipPartial
	}
	return skipOther
}

// skippedObjects follows the skipped objects across passes (and, with
// notifications, across notifications: the receiving loop's own).
type skippedObjects struct {
	counted   map[uint64]string // the keys counted, as the last passes found them
	untracked map[string]int    // by reason, the objects counted past maxSkippedTracked
	warned    bool              // the last passes skipped some, and said so
}

// noteSkipped counts the objects a pass skipped that the passes before did
// not, and warns of them once, until a complete pass skips none.
func (in *currentsInput) noteSkipped(w *walker) {
	sk, complete := &in.skipped, len(w.failed) == 0
	for sum, reason := range w.skipped.sums {
		if _, ok := sk.counted[sum]; !ok {
			in.stats.skipped.Incr(1, reason)
		}
	}
	for reason, n := range w.skipped.untracked {
		if n > sk.untracked[reason] {
			in.stats.skipped.Incr(int64(n-sk.untracked[reason]), reason)
		}
	}
	if complete || sk.counted == nil || len(sk.counted) >= maxSkippedTracked {
		sk.counted, sk.untracked = w.skipped.sums, w.skipped.untracked // reset gives the walker new maps
	} else {
		// A pass that missed a directory lists its objects again later.
		maps.Copy(sk.counted, w.skipped.sums)
		for reason, n := range w.skipped.untracked {
			sk.untracked[reason] = max(sk.untracked[reason], n)
		}
	}
	n := w.skipped.total()
	if n == 0 {
		sk.warned = sk.warned && !complete
		return
	}
	if sk.warned {
		return
	}
	sk.warned = true
	var why []string
	for _, r := range skipReasons {
		if c := w.skipped.byReason[r]; c > 0 {
			why = append(why, fmt.Sprintf("%d %s", c, r))
		}
	}
	in.log.Warnf("Found %s under event_type= directories of prefix %q of %s that are not .avro (%s), such as %q: not read; %s",
		plural(n, "object", "objects"), in.conf.prefix, bucketName(in.conf.url), strings.Join(why, ", "), w.skipped.example, in.notAvroListed())
}

// ownKeys are the keys the input writes under its bucket: its checkpoint's
// slots, when it keeps one there, which may be under the prefix.
func (in *currentsInput) ownKeys() []string {
	if !in.conf.ckptInBucket {
		return nil
	}
	keys := slotKeys(in.conf.ckptKey)
	return keys[:]
}

// noteSkippedNotice counts an object a notification names that is not read
// for not being .avro, and warns of it once, until a notification names an
// object to read.
func (in *currentsInput) noteSkippedNotice(key string) {
	reason := in.conf.sel.skipReason(key)
	if reason == "" {
		return
	}
	in.stats.skipped.Incr(1, reason)
	if in.skipped.warned {
		return
	}
	in.skipped.warned = true
	in.log.Warnf("A notification names %q under an event_type= directory of prefix %q of %s, which is not .avro (%s): not read; %s, to have them read. Said once until a notification names an object to read",
		key, in.conf.prefix, bucketName(in.conf.url), reason, notAvroWhy)
}
