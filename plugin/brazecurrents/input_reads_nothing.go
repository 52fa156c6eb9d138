package brazecurrents

import (
	"strconv"
	"strings"
)

// warnNoExport says when a complete listing found no Currents export under
// the prefix: a wrong url or prefix reads nothing, and would say nothing. It
// says it once, until a listing finds one.
func (in *currentsInput) warnNoExport(w *walker) {
	if w.layout {
		in.warnedNoExport = false
		return
	}
	if in.warnedNoExport {
		return
	}
	in.warnedNoExport = true
	if w.entries == 0 {
		in.log.Warnf("Found nothing under prefix %q of %s: check url and prefix (Braze writes under <prefix>/dataexport.…/event_type=<type>/date=<hour>/)",
			in.conf.prefix, bucketName(in.conf.url))
		return
	}
	in.log.Warnf("Found no Currents export under prefix %q of %s: no event_type= directory and no .avro object; check prefix (Braze writes under <prefix>/dataexport.…/event_type=<type>/date=<hour>/)",
		in.conf.prefix, bucketName(in.conf.url))
}

// warnNoneSelected says when a complete listing found a Currents export but
// the selection left out every one of its event types, or every one of its
// hours: the input then reads nothing, for ever in watch mode, and would say
// nothing. It says it once, until a listing finds an object to read.
func (in *currentsInput) warnNoneSelected(w *walker) {
	if w.wanted > 0 || !w.layout {
		in.warnedNoneSelected = false
		return
	}
	if in.warnedNoneSelected {
		return
	}
	prefix, bucket := in.conf.prefix, bucketName(in.conf.url)
	switch {
	case w.typeDirs > 0 && len(w.partitions) == 0:
		in.warnedNoneSelected = true
		in.log.Warnf("Found %s under prefix %q of %s (%s…), none of them selected by %s and %s (BRAZE_EVENT_TYPES, BRAZE_EXCLUDE_EVENT_TYPES): nothing is read; check them, and the event types the Currents export was set up with",
			plural(w.typeDirs, "event type", "event types"), prefix, bucket, strings.Join(w.someTypes, ", "), inFieldInclude, inFieldExclude)
	case w.hourDirs > 0 && w.inRange == 0:
		in.warnedNoneSelected = true
		in.log.Warnf("Found %s under prefix %q of %s, of the hours %s to %s, none of them within %s and %s (%s; CURRENTS_SINCE, CURRENTS_UNTIL): nothing is read until Currents writes an hour within them; check them",
			plural(w.hourDirs, "date= directory", "date= directories"), prefix, bucket, w.firstHour.Format(DateHourLayout), w.lastHr.Format(DateHourLayout), inFieldSince, inFieldUntil, windowName(in.conf.sel.window()))
	}
}

// plural is n and the noun's form for it: "1 object", "3 objects". Both
// forms are written out, so that the words of a logged line are in the
// source as logged.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
