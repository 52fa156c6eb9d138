package main

import (
	"strings"
	"testing"
)

// A BRAZE_* mapping option set to a value the mapping compares as the
// default ("1", "True", "Send") is warned of, naming the variable and what
// it counts as; unset, empty and known values are not.
func TestWarnBrazeOptions(t *testing.T) {
	env := map[string]string{"BRAZE_INCLUDE_ANONYMOUS": "1", "BRAZE_ALL_FIELDS": "true", "BRAZE_OTHER_EVENT_TYPES": "Send"}
	got := brazeOptionWarnings(func(k string) string { return env[k] })
	want := []string{
		`BRAZE_INCLUDE_ANONYMOUS="1" is neither false nor true: the mapping takes it as false (the default); set BRAZE_INCLUDE_ANONYMOUS=true to turn it on`,
		`BRAZE_OTHER_EVENT_TYPES="Send" is neither drop nor send: the mapping takes it as drop (the default); set BRAZE_OTHER_EVENT_TYPES=send to turn it on`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = brazeOptionWarnings(func(k string) string {
		return map[string]string{"BRAZE_INCLUDE_ANONYMOUS": "false", "BRAZE_OTHER_EVENT_TYPES": "drop"}[k]
	})
	if len(got) != 0 {
		t.Fatalf("known values warned of: %q", got)
	}
}

// An event type pattern in BRAZE_EVENT_TYPES or BRAZE_EXCLUDE_EVENT_TYPES
// that matches no Currents event type is warned of, once, naming the
// variable: in the Custom HTTP pipeline nothing else reads them, and a typo
// filtered out every event it meant. Known types and globs that match some
// are not, nor are empty entries.
func TestWarnUnknownEventTypePatterns(t *testing.T) {
	env := map[string]string{
		"BRAZE_EVENT_TYPES":         " users.messages.emial.* , users.messages.email.Send,,users.messages.emial.*, *.Open",
		"BRAZE_EXCLUDE_EVENT_TYPES": "users.canvas.Abrot",
	}
	got := brazeOptionWarnings(func(k string) string { return env[k] })
	want := []string{
		`BRAZE_EVENT_TYPES: "users.messages.emial.*" matches none of the 96 Currents event types this version knows (like users.messages.email.Send): the mapping selects nothing by it; check its spelling`,
		`BRAZE_EXCLUDE_EVENT_TYPES: "users.canvas.Abrot" matches none of the 96 Currents event types this version knows (like users.messages.email.Send): the mapping selects nothing by it; check its spelling`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A BRAZE_EVENT_TYPES pattern that selects only Currents types the mapping
// drops (neither Braze's 50 nor those it maps beyond them) is warned of,
// once, while BRAZE_OTHER_EVENT_TYPES is not send: the input reads those
// events and none goes to Segment, where the README's "patterns to send" led
// the operator to expect them. A pattern that also selects types the mapping
// sends is not, nor is any with BRAZE_OTHER_EVENT_TYPES=send.
func TestWarnPatternsOfDroppedEventTypes(t *testing.T) {
	env := map[string]string{"BRAZE_EVENT_TYPES": "users.behaviors.Location, users.messages.email.Send, users.behaviors.CustomEvent, users.behaviors.*, *.Location,users.behaviors.Location"}
	got := brazeOptionWarnings(func(k string) string { return env[k] })
	want := []string{
		`BRAZE_EVENT_TYPES: "users.behaviors.Location" selects only event types the mapping drops while BRAZE_OTHER_EVENT_TYPES is not send (neither one of Braze's 50 nor a custom event, purchase or app lifecycle event): their events are read and none is sent; set BRAZE_OTHER_EVENT_TYPES=send to send them as "Braze <event type>"`,
		`BRAZE_EVENT_TYPES: "*.Location" selects only event types the mapping drops while BRAZE_OTHER_EVENT_TYPES is not send (neither one of Braze's 50 nor a custom event, purchase or app lifecycle event): their events are read and none is sent; set BRAZE_OTHER_EVENT_TYPES=send to send them as "Braze <event type>"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	env["BRAZE_OTHER_EVENT_TYPES"] = "send"
	if got := brazeOptionWarnings(func(k string) string { return env[k] }); len(got) != 0 {
		t.Fatalf("warned with BRAZE_OTHER_EVENT_TYPES=send: %q", got)
	}
}
