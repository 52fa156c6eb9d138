package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

// object is one Currents object found while walking a bucket.
type object struct {
	key       string
	size      int64
	modTime   time.Time
	partition string     // its event_type= directory: integration and event type (objectAt)
	hour      time.Time  // the date= queue hour; zero when the key has none
	eventType string     // from the key's event_type= segment, for metrics
	notice    *noticeRun // the notification that named it, in notification mode
}

// walker lists a Currents prefix the way Braze lays it out. It descends
// directory by directory (never by a fixed depth, since Braze warns that the
// layout may change) and prunes event_type= and date= directories that the
// selection does not want, so unselected types and hours are never listed.
type walker struct {
	bucket *blob.Bucket
	sel    selection
	// skipHour says whether a partition's hour is already done (checkpoint
	// watermark), so that its directory is not listed again.
	skipHour func(partition string, hour time.Time) bool
	// hours, when it answers ok, names the only date= hours of a partition
	// worth listing: those after its watermark, up to now.
	hours func(partition string) (hours []time.Time, ok bool)
	// listed, when set, is told of each partition as soon as a walk has
	// listed all of it without a failure, so that its hours can settle
	// while the walk goes on: a first pass hands out the whole backfill,
	// and would otherwise keep every done key until it ends.
	listed func(partition string)
	// listedTo, when set, is told while a partition's own directory is
	// listed that all of its date= hours up to hour are listed: the store
	// lists keys in lexicographic order (gocloud.dev/blob's contract), so
	// no earlier hour can follow. A single event type's backfill would
	// otherwise keep every done key until its listing ends.
	listedTo func(partition string, hour time.Time)
	// reopen, when set, is told of a date= directory a store listed after
	// the hour after, against that contract, so that the hours the listing
	// settled, from from on (zero: all), are taken back before dir is
	// pruned as done: the hours that come after it may be earlier still.
	// The partition then settles only as a whole (unordered), as before.
	reopen func(partition, dir string, after, from time.Time)
	// relayout, when set, is told of entry, not a date= hour, that the
	// listing of partition met after hours it may have settled: a level
	// before date= (version=2/) lists after the hours and may hold objects
	// of theirs. The hours from from (zero: all) are taken back before entry
	// is read, and the partition settles only as a whole (unordered).
	relayout func(partition, entry string, from time.Time)
	// unlisted, when set, is told of each directory that fails to list as
	// the walk meets it: the walk goes on, and may take long to end.
	unlisted  func(f listFailure)
	watermark func(partition string) (time.Time, bool)
	unordered map[string]bool
	// byHour holds, for a partition whose last complete listing held
	// nothing but date=<hour>/ directories, when that listing started and
	// ended. Only such a partition is listed hour by hour, and only for
	// relearnLayout: objects in a layout the walker does not parse (a
	// date=<day>/ directory, an object beside the hours) would never be
	// listed again.
	byHour map[string]layoutSeen
	// hourly holds, for each partition the walks since reset listed hour
	// by hour, when the listing of its directory they rely on started: see
	// settleBy.
	hourly map[string]time.Time
	now    func() time.Time
	// timeout limits each page of a listing (read_timeout).
	timeout time.Duration
	// What the walks since reset saw: the event_type= directories listed
	// (pruned ones not), every key and directory listed, and whether an
	// event_type= directory or an .avro object was among them.
	partitions []string
	entries    int
	layout     bool
	// What the selection did to them: event_type= directories met (a few of
	// their types, for messages), date= hours met and within since/until, and
	// the .avro objects wanted, so that a listing can tell an export whose
	// every type or hour was left out from one with nothing new.
	typeDirs          int
	someTypes         []string
	hourDirs, inRange int
	firstHour, lastHr time.Time
	wanted            int
	// The directories below the prefix that the walks since reset could not
	// list: each walk went on without them.
	failed []listFailure
	// The objects the walks since reset did not read for not being .avro.
	skipped skippedPass
}

// listFailure is a directory a walk could not list, why, and the partition
// it is or lies in ("" above the partitions).
type listFailure struct {
	dir, partition string
	err            error
}

func (w *walker) reset() {
	w.partitions, w.entries, w.layout, w.failed = w.partitions[:0], 0, false, w.failed[:0]
	w.typeDirs, w.someTypes, w.hourDirs, w.inRange, w.wanted = 0, w.someTypes[:0], 0, 0, 0
	w.firstHour, w.lastHr = time.Time{}, time.Time{}
	clear(w.hourly)
	w.skipped.reset()
}

// walk calls fn for every wanted object under prefix, in key order. It
// fails if prefix itself cannot be listed; a directory below it that cannot
// be listed is left out and noted in failed, so that one event type a policy
// denies, or a path that always times out, does not stop the others.
func (w *walker) walk(ctx context.Context, prefix string, fn func(object) error) error {
	// A listing of a partition's own directory learns its layout; until it
	// completes, the partition is not listed hour by hour.
	learns, hourly := "", true
	// The partition's hour listed last, to check the order, and the first
	// hour its listing may settle, to take back on another layout.
	var last, from, began time.Time
	if strings.HasPrefix(path.Base(prefix), "event_type=") {
		began = w.now()
		learns = strings.TrimSuffix(prefix, "/")
		delete(w.byHour, learns)
		if w.watermark != nil {
			if wm, ok := w.watermark(learns); ok {
				from = wm.Add(time.Hour)
			}
		}
	}
	iter := w.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		pageCtx, done := callCtx(ctx, w.timeout)
		obj, err := iter.Next(pageCtx)
		err = done(err)
		// The end is io.EOF itself: an error that wraps it is a connection
		// the store closed mid-listing, which must not pass for the end.
		if err == io.EOF {
			if learns != "" {
				w.setByHour(learns, hourly, began)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %q: %w", prefix, bucketurl.Redact(err))
		}
		w.entries++
		var hour time.Time                               // of a date= directory of the partition's own listing
		if learns != "" && hourly && obj.Key != prefix { // not a console's folder marker
			h, ok := hourOfDir(obj.Key)
			if hourly = ok && obj.IsDir; hourly {
				hour = h
				w.checkOrder(learns, obj.Key, last, h, from)
				last = h
			} else if !last.IsZero() && w.settlesWhole(learns) && w.relayout != nil {
				w.relayout(learns, obj.Key, from)
			}
		}
		if strings.HasSuffix(obj.Key, ".avro") || strings.HasPrefix(path.Base(obj.Key), "event_type=") {
			w.layout = true
		}
		if !obj.IsDir {
			if err := w.visit(obj, fn); err != nil {
				return err
			}
			continue
		}
		if !w.wantsDir(obj.Key) {
			w.settleTo(learns, hour)
			continue
		}
		dirs, partition := []string{obj.Key}, ""
		if strings.HasPrefix(path.Base(obj.Key), "event_type=") {
			partition = strings.TrimSuffix(obj.Key, "/")
			w.partitions = append(w.partitions, partition)
			if hours, ok := w.hoursOf(partition); ok {
				dirs = dirs[:0]
				for _, h := range hours {
					if dir := obj.Key + "date=" + h.Format(DateHourLayout) + "/"; w.wantsDir(dir) {
						dirs = append(dirs, dir)
					}
				}
			}
		}
		for _, dir := range dirs {
			if err := w.walk(ctx, dir, fn); err != nil {
				if ctx.Err() != nil {
					return err
				}
				f := listFailure{dir: dir, partition: partitionOf(dir), err: errors.Unwrap(err)} // err names dir
				w.failed = append(w.failed, f)
				if w.unlisted != nil {
					w.unlisted(f)
				}
			}
		}
		if partition != "" && w.listed != nil && !w.failedUnder(partition) {
			w.listed(partition)
		}
		w.settleTo(learns, hour)
	}
}

// settleTo tells listedTo that partition's hours up to hour are listed,
// unless its listing failed or came out of order; a zero hour (not a date=
// directory of the partition's own listing) tells nothing.
func (w *walker) settleTo(partition string, hour time.Time) {
	if hour.IsZero() || w.listedTo == nil || w.unordered[partition] || w.failedUnder(partition) {
		return
	}
	w.listedTo(partition, hour)
}

// checkOrder takes back what settleTo settled from from on when a store
// lists hour at or before the previous one, before wantsDir can prune it as
// done.
func (w *walker) checkOrder(partition, dir string, previous, hour, from time.Time) {
	if previous.IsZero() || hour.After(previous) || !w.settlesWhole(partition) {
		return
	}
	if w.reopen != nil {
		w.reopen(partition, dir, previous, from)
	}
}

// settlesWhole has partition settle only as a whole from now on; false
// when it already did.
func (w *walker) settlesWhole(partition string) bool {
	if w.unordered[partition] {
		return false
	}
	if w.unordered == nil {
		w.unordered = map[string]bool{}
	}
	w.unordered[partition] = true
	return true
}

// failedUnder says whether a directory of partition failed to list in the
// walks since reset.
func (w *walker) failedUnder(partition string) bool {
	return slices.ContainsFunc(w.failed, func(f listFailure) bool { return f.partition == partition })
}

// complete are the partitions the walks since reset listed in full: a
// partition with a directory that failed may hold objects they never saw.
func (w *walker) complete() []string {
	if len(w.failed) == 0 {
		return w.partitions
	}
	var out []string
	for _, p := range w.partitions {
		if !w.failedUnder(p) {
			out = append(out, p)
		}
	}
	return out
}

// relisted says whether the walks since reset listed dir: its partition was listed in full (dir may be pruned by now, its hours
// done), or, above the partitions, no directory above it failed.
func (w *walker) relisted(dir string) bool {
	if p := partitionOf(dir); p != "" {
		return slices.Contains(w.complete(), p)
	}
	return !slices.ContainsFunc(w.failed, func(f listFailure) bool { return strings.HasPrefix(dir, f.dir) })
}

// partitionOf is the partition dir is or lies in: its key up to its
// event_type= directory; "" for a directory above the partitions.
func partitionOf(dir string) string {
	parts := strings.Split(dir, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "event_type=") {
			return strings.Join(parts[:i+1], "/")
		}
	}
	return ""
}

// hourOfDir is the hour a date=<YYYY-MM-DD-HH>/ directory stands for.
func hourOfDir(dir string) (time.Time, bool) {
	name, ok := strings.CutPrefix(path.Base(dir), "date=")
	if !ok {
		return time.Time{}, false
	}
	hour, err := time.Parse(DateHourLayout, name)
	return hour, err == nil
}

func (w *walker) wantsDir(dir string) bool {
	name := path.Base(strings.TrimSuffix(dir, "/"))
	switch {
	case strings.HasPrefix(name, "event_type="):
		eventType := strings.TrimPrefix(name, "event_type=")
		if w.typeDirs++; len(w.someTypes) < 3 {
			w.someTypes = append(w.someTypes, eventType)
		}
		return w.sel.wantsType(eventType)
	case strings.HasPrefix(name, "date="):
		hour, ok := hourOfDir(name)
		if !ok {
			return true // not the layout we know: look inside rather than lose data
		}
		w.metHour(hour)
		if !w.sel.wantsHour(hour) {
			return false
		}
		w.inRange++
		// Its partition is the event_type= directory it lies in, whatever
		// levels come between (objectAt), else the directory above it.
		partition := partitionOf(dir)
		if partition == "" {
			partition = strings.TrimSuffix(strings.TrimSuffix(dir, "/"), "/"+name)
		}
		return w.skipHour == nil || !w.skipHour(partition, hour)
	}
	return true
}

func (w *walker) metHour(hour time.Time) {
	w.hourDirs++
	if w.firstHour.IsZero() || hour.Before(w.firstHour) {
		w.firstHour = hour
	}
	if hour.After(w.lastHr) {
		w.lastHr = hour
	}
}

func (w *walker) visit(obj *blob.ListObject, fn func(object) error) error {
	o, ok := w.sel.objectAt(obj.Key)
	if !ok {
		w.skipped.note(w.sel, obj.Key)
		return nil
	}
	w.wanted++
	o.size, o.modTime = obj.Size, obj.ModTime
	return fn(o)
}
