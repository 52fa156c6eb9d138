package brazecurrents

import (
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// A listing that finds a Currents export whose every event type, or every
// hour, the selection leaves out says so once, naming what it found: an
// include_event_types of types the export lacks, or a since/until window
// around none of its hours, would read nothing (for ever in watch mode) with
// /ready at 200 and not a word logged.
func TestInputWarnsWhenTheSelectionLeavesOutTheExport(t *testing.T) {
	export := t.TempDir()
	written, err := fixtures.WriteTree(export, fixtures.TreeOptions{RecordsPerFile: 2, EventTypes: []string{"users.messages.email.Send"}})
	if err != nil {
		t.Fatal(err)
	}
	hour := ParseObjectKey(written[0].Key).DateHour
	for _, tc := range []struct{ conf, want string }{
		{"include_event_types: [ users.messages.pushnotification.Send ]",
			`Found 1 event type under prefix \"currents/\" of file://` + export + ` (users.messages.email.Send…), none of them selected by include_event_types and exclude_event_types`},
		{"exclude_event_types: [ users.messages.email.* ]", "none of them selected by include_event_types"},
		{"since: 2099-01-01", "Found 1 date= directory under prefix \\\"currents/\\\" of file://" + export + ", of the hours " + hour + " to " + hour +
			", none of them within since and until (the hours 2099-01-01-00..;"},
		{"until: 2000-01-01", "none of them within since and until (the hours ..2000-01-01-23;"},
		{"since: " + hour, ""},
		{"", ""},
	} {
		wantOnePassWarning(t, "url: file://"+export+"\nprogress_interval: 0s\n"+tc.conf, tc.want)
	}
}

// In watch mode the warning comes once, not at every poll, and again only
// after a listing found an object to read in between.
func TestInputWarnsOfNoneSelectedOncePerStretch(t *testing.T) {
	mgr, logs := loggingResources(t)
	in := newCurrentsInput(inputConfig{url: "s3://my-bucket?region=us-east-1", prefix: "currents/"}, mgr)
	leftOut := walker{layout: true, typeDirs: 2, someTypes: []string{"users.messages.email.Send"}}
	for _, w := range []walker{leftOut, leftOut, {layout: true, typeDirs: 2, partitions: []string{"p"}, wanted: 1}, leftOut} {
		in.warnNoneSelected(&w)
	}
	logged := warnings(t, logs)
	if len(logged) != 2 || !strings.Contains(logged[0], `Found 2 event types under prefix \"currents/\" of s3://my-bucket (users.messages.email.Send…)`) {
		t.Fatalf("warnings %q, want two: the first listing that left everything out and the first after one found an object", logged)
	}
}
