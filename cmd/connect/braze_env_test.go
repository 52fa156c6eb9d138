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
