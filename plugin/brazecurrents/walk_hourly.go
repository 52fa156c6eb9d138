package brazecurrents

import "time"

// The walker lists a partition hour by hour (the date= hours after its
// watermark, up to now) for a while after a listing of its directory found
// nothing but date=<hour>/ directories in it.

// layoutSeen is when a listing of a partition's directory that found
// nothing but date=<hour>/ directories started and ended.
type layoutSeen struct{ started, ended time.Time }

// settleBy is when a listing of partition, which a pass that started at
// started made, counts as started for settling its hours (checkpoint.walked):
// the pass's start, unless the walk listed it hour by hour. Such a listing
// would not see another layout (version=2/date=<hour>/) Braze moved to since
// its directory was listed, and an hour it settled would then be pruned as
// done there too: it settles only the hours closed when the listing of the
// directory it relies on started, which would have seen such a layout
// holding any of their objects.
func (w *walker) settleBy(partition string, started time.Time) time.Time {
	if learned, ok := w.hourly[partition]; ok && learned.Before(started) {
		return learned
	}
	return started
}

// relearnLayout is how long a partition is listed hour by hour before its
// directory is listed again: Braze may change the layout of a partition at
// any hour, and what it writes in a new one would otherwise wait for a
// restart, or for the partition to fall maxHourListings behind.
const relearnLayout = time.Hour

func (w *walker) hoursOf(partition string) ([]time.Time, bool) {
	learned, ok := w.byHour[partition]
	if w.hours == nil || !ok || due(w.now(), learned.ended, relearnLayout) {
		return nil, false
	}
	hours, ok := w.hours(partition)
	if ok {
		if w.hourly == nil {
			w.hourly = map[string]time.Time{}
		}
		w.hourly[partition] = learned.started
	}
	return hours, ok
}

func (w *walker) setByHour(partition string, hourly bool, began time.Time) {
	if !hourly {
		delete(w.byHour, partition)
		return
	}
	if w.byHour == nil {
		w.byHour = map[string]layoutSeen{}
	}
	w.byHour[partition] = layoutSeen{started: began, ended: w.now()}
}

// due says whether something done at last, every every, is due again at
// now; also when now is before last. In-process readings of the real clock
// compare by their monotonic reading, which never goes back; a fake clock's
// (the tests') do, as a wall clock set back would, and would hold it back
// for as long as the jump.
func due(now, last time.Time, every time.Duration) bool {
	since := now.Sub(last)
	return since < 0 || since >= every
}
