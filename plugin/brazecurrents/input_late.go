package brazecurrents

import (
	"fmt"
	"time"
)

// lateLookback is the lister's side of the look back at late files
// (checkpoint_late.go): which partitions' settled hours a listing may list
// again, and the warning for a late file. Only the lister touches it, but
// for log, which is safe to share.
type lateLookback struct {
	log *logThrottle
	// When the last listing of each partition that looked back at its
	// settled hours started; those of the pass under way.
	last    map[string]time.Time
	looking map[string]bool
	ahead   bool // a watermark was ahead of the clock at the last pass
}

// lookbackEvery is how often a partition's settled hours are listed again:
// as often as its directory is (relearnLayout), whose listing, in the usual
// layout, is the one that lists them.
const lookbackEvery = relearnLayout

// skipHour says whether a listing passes over hour of partition: an hour
// behind the watermark, unless it is within late_lookback and the
// partition's settled hours are due to be listed again.
func (in *currentsInput) skipHour(partition string, hour time.Time) bool {
	if !in.ckpt.hourDone(partition, hour) {
		// A partition without a watermark is listed whole: that listing
		// looks at every hour there is.
		if _, ok := in.ckpt.watermark(partition); !ok {
			in.lookingAt(partition)
		}
		return false
	}
	if !in.ckpt.lookingBack(partition, hour) {
		return true
	}
	if last, ok := in.late.last[partition]; ok && !due(in.clock.Now(), last, lookbackEvery) && !in.late.looking[partition] {
		return true
	}
	in.lookingAt(partition)
	return false
}

// lookingAt notes that the listing under way lists partition's settled
// hours (or all of its hours).
func (in *currentsInput) lookingAt(partition string) {
	if in.late.looking == nil {
		in.late.looking = map[string]bool{}
	}
	in.late.looking[partition] = true
}

// lookedBack notes that a listing of partition that started at started
// listed it in full: if it listed settled hours again, they are due next
// lookbackEvery after that.
func (in *currentsInput) lookedBack(partition string, started time.Time) {
	if !in.late.looking[partition] {
		return
	}
	delete(in.late.looking, partition)
	if in.late.last == nil {
		in.late.last = map[string]time.Time{}
	}
	in.late.last[partition] = started
}

// noteLate counts and logs a late object the listing claimed for reading.
func (in *currentsInput) noteLate(o object) {
	in.stats.late.Incr(1)
	w, _ := in.ckpt.watermark(o.partition)
	in.late.log.warn("late", fmt.Sprintf("Found %s in hour %s, which had already counted as done (the watermark of its event type is at %s; %s %v): "+
		"Braze wrote it after a listing settled that hour; it is read now and counted in braze_currents_objects_late",
		o.key, o.hour.Format(DateHourLayout), w.Format(DateHourLayout), inFieldLateArrival, in.conf.lateArrival))
}

// noteAhead warns, once while it lasts, of a watermark ahead of the clock:
// hours settled on a clock ahead of this one, into which Braze still writes
// on time. Those files are read only as late ones, and not at all with
// late_lookback 0.
func (in *currentsInput) noteAhead() {
	partition, w, ahead := in.ckpt.ahead()
	switch {
	case ahead && !in.late.ahead:
		read := "read as late files (braze_currents_objects_late), within about an hour and a poll, until the clock passes it"
		if in.conf.lateLookback <= 0 {
			read = fmt.Sprintf("not read, as %s is 0: replay those hours (a new checkpoint.key, with since and until around them)", inFieldLateLookback)
		}
		in.log.Warnf("The watermark of %s is at hour %s, which had not closed by this host's clock (%s; %s %v): it settled on a clock ahead of this one, "+
			"which jumped back since or is behind the one of the host that saved the checkpoint. The files Braze writes into the hours up to it are %s; check the clocks (NTP)",
			partition, w.Format(DateHourLayout), in.clock.Now().UTC().Format(time.RFC3339), inFieldLateArrival, in.conf.lateArrival, read)
	case !ahead && in.late.ahead:
		in.log.Infof("No watermark is ahead of this host's clock any more: its hours are listed as usual")
	}
	in.late.ahead = ahead
}
