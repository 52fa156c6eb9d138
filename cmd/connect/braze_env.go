package main

import (
	"fmt"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents"
)

// brazeOptionValues are the values the mapping (bloblang/currents_to_segment.blobl)
// tells apart for each option it reads from the environment itself, the first
// being what any other value counts as. It compares exactly: "True", "1" or
// "yes" is false, "Send" is drop.
var brazeOptionValues = []struct {
	name   string
	values []string
}{
	{"BRAZE_INCLUDE_ANONYMOUS", []string{"false", "true"}},
	{"BRAZE_ALL_FIELDS", []string{"false", "true"}},
	{"BRAZE_OTHER_EVENT_TYPES", []string{"drop", "send"}},
}

// brazeOptionWarnings returns a warning for each mapping option whose
// variable holds a value the mapping does not know, for each event type
// pattern that matches no Currents event type, and for each pattern of
// BRAZE_EVENT_TYPES that selects only types the mapping drops. Nothing else reads them,
// and the mapping takes such a value as the default without a word:
// anonymous users quietly left out, say, while the operator believed them
// sent. A warning, not a refusal, since the value works, only not as meant.
func brazeOptionWarnings(getenv func(string) string) []string {
	var warnings []string
	for _, opt := range brazeOptionValues {
		v := getenv(opt.name)
		if v == "" || v == opt.values[0] || v == opt.values[1] {
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s=%q is neither %s nor %s: the mapping takes it as %s (the default); set %s=%s to turn it on",
			opt.name, v, opt.values[0], opt.values[1], opt.values[0], opt.name, opt.values[1]))
	}
	// The bucket input warns of its own patterns too, but in the Custom HTTP
	// pipeline the mapping alone reads them: a typo there filtered out every
	// event it meant, each acknowledged to Braze, without a word.
	for _, name := range []string{"BRAZE_EVENT_TYPES", "BRAZE_EXCLUDE_EVENT_TYPES"} {
		unknown, known := brazecurrents.UnknownEventTypePatterns(getenv(name))
		for _, p := range unknown {
			warnings = append(warnings, fmt.Sprintf("%s: %q matches none of the %d Currents event types this version knows (like users.messages.email.Send): the mapping selects nothing by it; check its spelling",
				name, p, known))
		}
	}
	// A type the mapping does not send, named alone, is read and dropped
	// (other_event_types drop), though the README calls these patterns to send.
	if getenv("BRAZE_OTHER_EVENT_TYPES") != "send" {
		for _, p := range brazecurrents.DroppedEventTypePatterns(getenv("BRAZE_EVENT_TYPES")) {
			warnings = append(warnings, fmt.Sprintf("BRAZE_EVENT_TYPES: %q selects only event types the mapping drops while BRAZE_OTHER_EVENT_TYPES is not send (neither one of Braze's 50 nor a custom event, purchase or app lifecycle event): their events are read and none is sent; set BRAZE_OTHER_EVENT_TYPES=send to send them as \"Braze <event type>\"", p))
		}
	}
	return warnings
}
