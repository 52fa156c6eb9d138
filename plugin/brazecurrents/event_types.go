package brazecurrents

import (
	_ "embed"
	"path"
	"slices"
	"strings"
)

// event_types.txt lists the Currents event types of the facts the fixtures
// are built from (tests/fixtures/facts/fields.tsv), one a line, sorted. A
// test fails when the two differ.
//
//go:generate sh -c "cut -f1 ../../tests/fixtures/facts/fields.tsv | tail -n +2 | LC_ALL=C sort -u > event_types.txt"
//go:embed event_types.txt
var eventTypesText string

// knownEventTypes are the Currents event types this version knows of. The
// input reads other types too (Braze adds some); the list only serves to
// warn about event type patterns that match none.
var knownEventTypes = strings.Fields(eventTypesText)

// otherEventType is the event_type label value of the types outside
// knownEventTypes that a counter gives no series of their own (typeLabels).
const otherEventType = "other"

var knownEventTypeSet = func() map[string]bool {
	set := make(map[string]bool, len(knownEventTypes))
	for _, t := range knownEventTypes {
		set[t] = true
	}
	return set
}()

// segment_event_types.txt lists the 50 event types Braze's "Segment for
// Currents" connector sends: the types bloblang/currents_to_segment.blobl
// maps, which stays their one place of truth. A test fails when the list
// differs from the mapping or from tests/fixtures/facts/segment_events.tsv.
//
//go:generate sh -c "sed -n 's/^    \"\\(users\\.[^\"]*\\)\" => {$/\\1/p' ../../bloblang/currents_to_segment.blobl | LC_ALL=C sort > segment_event_types.txt"
//go:embed segment_event_types.txt
var segmentEventTypesText string

// segmentEventTypes is what the input reads when include_event_types is
// empty: the types the mapping sends, so that the others are never listed
// nor downloaded. "*" reads every type.
var segmentEventTypes = strings.Fields(segmentEventTypesText)

// beyond_braze_event_types.txt lists the types the mapping sends beyond
// Braze's 50 when event_types names them (its map beyond_braze, whose arms
// open with their first field on the line): custom events, purchases, the
// app lifecycle. A test fails when it differs from the mapping.
//
//go:generate sh -c "sed -n 's/^    \"\\(users\\.[^\"]*\\)\" => {..*$/\\1/p' ../../bloblang/currents_to_segment.blobl | LC_ALL=C sort > beyond_braze_event_types.txt"
//go:embed beyond_braze_event_types.txt
var beyondBrazeEventTypesText string

// mappedEventTypes are the types the mapping sends without
// other_event_types send: Braze's 50 and those beyond them.
var mappedEventTypes = append(slices.Clone(segmentEventTypes), strings.Fields(beyondBrazeEventTypesText)...)

// matchesKnownType says whether pattern matches a known event type.
func matchesKnownType(pattern string) bool {
	for _, t := range knownEventTypes {
		if ok, _ := path.Match(pattern, t); ok {
			return true
		}
	}
	return false
}

// unknownPatterns are the patterns, once each, that match no known event
// type: a typo there reads, skips or sends nothing, silently.
func unknownPatterns(patterns []string) []string {
	var unknown []string
	for _, p := range patterns {
		if !slices.Contains(unknown, p) && !matchesKnownType(p) {
			unknown = append(unknown, p)
		}
	}
	return unknown
}

// UnknownEventTypePatterns are the patterns of list (comma-separated, as
// BRAZE_EVENT_TYPES carries them to the mapping) that match none of the
// Currents event types this version knows, and how many types it knows.
func UnknownEventTypePatterns(list string) (unknown []string, known int) {
	return unknownPatterns(splitPatterns([]string{list})), len(knownEventTypes)
}

// DroppedEventTypePatterns are the patterns of list (comma-separated, as
// BRAZE_EVENT_TYPES carries them) that match known event types, none of
// which the mapping sends unless other_event_types is send: the input reads
// their events, and each is dropped.
func DroppedEventTypePatterns(list string) []string {
	var dropped []string
	for _, p := range splitPatterns([]string{list}) {
		if slices.Contains(dropped, p) || !matchesKnownType(p) {
			continue
		}
		if !slices.ContainsFunc(mappedEventTypes, func(t string) bool { ok, _ := path.Match(p, t); return ok }) {
			dropped = append(dropped, p)
		}
	}
	return dropped
}
