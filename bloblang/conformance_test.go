package bloblang_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// options are the mapping's options a run sets: include_anonymous, all_fields.
type options struct {
	name                 string
	anonymous, allFields bool
}

// eraRecords is the number of events written for each type and schema era: enough that every nullable
// field is null in some and set in others (checked, since the values are drawn from a seed).
const eraRecords = 40

// era is the events of one of Braze's 50 types written with the schema it had from a date on.
type era struct {
	eventType, seenFrom string
	records             []map[string]any
}

// TestEverySchemaEraMapsAsTheFactsSay writes, for each of the 50 types Braze's connector sends and each
// schema it had (schema_changes.tsv), a file of that schema, reads it with the braze_currents input and
// maps it with the shipped pipelines' mapping: default options, anonymous users included, all_fields. Each
// call must be the one the facts describe (README §2, segment_events.tsv), written here from the record
// alone. The same events sent as Custom HTTP JSON through the braze_currents_http input, nulls sent as
// null or left out, must give the same calls.
func TestEverySchemaEraMapsAsTheFactsSay(t *testing.T) {
	t.Chdir("..") // the configs' imports resolve from the repository root
	for _, k := range []string{"BRAZE_EVENT_TYPES", "BRAZE_EXCLUDE_EVENT_TYPES", "BRAZE_INCLUDE_ANONYMOUS", "BRAZE_OTHER_EVENT_TYPES", "BRAZE_ALL_FIELDS"} {
		t.Setenv(k, "") // restored when the test ends
		_ = os.Unsetenv(k)
	}
	dir := t.TempDir()
	eras := writeEras(t, dir)
	if len(eras) < 150 {
		t.Fatalf("%d schema eras of the 50 types, want the 199 of schema_changes.tsv", len(eras))
	}
	// The options as the shipped configs give them, in the environment: the defaults, anonymous users
	// included, every field (README, Choosing events).
	for _, o := range []options{{name: "defaults"}, {name: "include_anonymous", anonymous: true}, {name: "all_fields", allFields: true}} {
		t.Run(o.name, func(t *testing.T) {
			if o.anonymous {
				t.Setenv("BRAZE_INCLUDE_ANONYMOUS", "true")
			}
			if o.allFields {
				t.Setenv("BRAZE_ALL_FIELDS", "true")
			}
			inputs := map[string]*results{
				"bucket":      runPipeline(t, "config/currents_to_segment.yaml", "braze_currents:\n  url: file://"+dir, nil),
				"Custom HTTP": runPipeline(t, "config/currents_http_to_segment.yaml", "", eras),
			}
			// Failures are told once per type, era, input and kind, with the number of events and one of them.
			failures := map[string][]string{}
			var sent, skipped int
			for _, e := range eras {
				for _, r := range e.records {
					want := expectedCall(fixtures.SegmentEvents()[e.eventType], r, o)
					if want == nil {
						skipped++
					} else {
						sent++
					}
					for input, res := range inputs {
						for _, f := range checkCall(res, r["id"].(string), want) {
							k := fmt.Sprintf("%s of %s via %s: %s", e.eventType, e.seenFrom, input, f[0])
							failures[k] = append(failures[k], f[1])
						}
					}
				}
			}
			for _, k := range slices.Sorted(maps.Keys(failures)) {
				t.Errorf("%s (%d events), e.g. %s", k, len(failures[k]), failures[k][0])
			}
			// Both outcomes of the user rules are seen (with anonymous users included, the skipped are
			// the events of no user at all), and nothing else came out: no event fails.
			if sent == 0 || skipped == 0 {
				t.Errorf("%d events sent, %d skipped: the records do not exercise the user rules", sent, skipped)
			}
			for input, res := range inputs {
				if len(res.calls) != sent || len(res.errs) != 0 {
					t.Errorf("via %s: %d calls and %d errors, want %d and none", input, len(res.calls), len(res.errs), sent)
				}
			}
			t.Logf("%d schema eras of %d types: %d events sent, %d skipped, via each input",
				len(eras), len(fixtures.SegmentEvents()), sent, skipped)
		})
	}
}

// checkCall compares the outcome of event id in res with the call want (nil: skipped), and returns each
// difference as {what, an example}.
func checkCall(res *results, id string, want map[string]any) [][2]string {
	got, sent := res.calls[id]
	errText, failed := res.errs[id]
	switch {
	case failed:
		return [][2]string{{"the mapping failed", id + ": " + errText}}
	case want == nil && sent:
		return [][2]string{{"sent, want it skipped (no external_user_id, or no user at all)", fmt.Sprint(got)}}
	case want == nil:
		return nil
	case !sent:
		return [][2]string{{"not sent", id}}
	}
	var diffs [][2]string
	gotLeaves, wantLeaves := flatten("", got, map[string]any{}), flatten("", want, map[string]any{})
	keys := maps.Clone(gotLeaves)
	maps.Copy(keys, wantLeaves)
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		g, gok := gotLeaves[k]
		w, wok := wantLeaves[k]
		switch {
		case !gok:
			diffs = append(diffs, [2]string{k + " missing", fmt.Sprintf("%s: want %v", id, w)})
		case !wok:
			diffs = append(diffs, [2]string{k + " not wanted", fmt.Sprintf("%s: got %v", id, g)})
		case fmt.Sprintf("%#v", normalise(g)) != fmt.Sprintf("%#v", normalise(w)):
			diffs = append(diffs, [2]string{k + " differs", fmt.Sprintf("%s: got %#v, want %#v", id, g, w)})
		}
	}
	return diffs
}

// flatten adds the leaves of call to into, the objects of context and properties one level down
// (context.traits.email, properties.dispatch_id), and returns into.
func flatten(prefix string, call map[string]any, into map[string]any) map[string]any {
	for k, v := range call {
		if m, ok := v.(map[string]any); ok && len(m) > 0 && (prefix == "" || prefix == "context.") {
			flatten(prefix+k+".", m, into)
			continue
		}
		into[prefix+k] = v
	}
	return into
}

// normalise is v as JSON gives it back: the calls and the records hold int64, JSON float64.
func normalise(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// writeEras writes one file of eraRecords events per type and schema era under dir, in the date=
// partition of the era's first day, and returns the eras with their records. Each era's seed is the
// first (of a fixed sequence) whose events have every nullable field null in some and set in others.
func writeEras(t *testing.T, dir string) []era {
	t.Helper()
	var eras []era
	for i, et := range fixtures.SegmentEventTypes() {
		for j, v := range fixtures.Versions(et) {
			spec := fixtures.FileSpec{EventType: et, Fields: v.Fields, Records: eraRecords}
			if v.SeenFrom != "" {
				day, err := time.Parse(time.DateOnly, v.SeenFrom)
				if err != nil {
					t.Fatal(err)
				}
				spec.DateHour = day
			}
			var buf bytes.Buffer
			var records []map[string]any
			for try := uint64(0); records == nil; try++ {
				if try == 50 {
					t.Fatalf("%s of %s: no seed gives every nullable field both null and set", et, v.SeenFrom)
				}
				spec.Seed = uint64(1000*i+10*j) + try<<32
				buf.Reset()
				recs, err := fixtures.WriteFile(&buf, spec)
				if err != nil {
					t.Fatal(err)
				}
				if bothNullAndSet(v.Fields, recs) {
					records = recs
				}
			}
			path := filepath.Join(dir, filepath.FromSlash(fixtures.Key(spec)))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			eras = append(eras, era{et, v.SeenFrom, records})
		}
	}
	return eras
}

// bothNullAndSet says whether every nullable field of fields is null in some records and set in others.
func bothNullAndSet(fields []fixtures.Field, records []map[string]any) bool {
	for _, f := range fields {
		nulls := 0
		for _, r := range records {
			if r[f.Name] == nil {
				nulls++
			}
		}
		if f.Nullable && (nulls == 0 || nulls == len(records)) {
			return false
		}
	}
	return true
}

// expectedCall is the Segment call README §2 and segment_events.tsv describe for record r: nil when
// Braze's connector skips it (no external_user_id, anonymous users not included; or no user at all,
// which Segment takes no call of). A field the table does not name is a property of its own name
// (fixtures.SegmentEvent.Names says why).
//
// With all_fields, every non-null field is a property but the identity ones and the sources of
// renamed properties (README, Choosing events).
func expectedCall(ev fixtures.SegmentEvent, r map[string]any, o options) map[string]any {
	// An empty id is none: Segment needs a userId or an anonymousId that is not empty.
	none := func(f string) bool { return r[f] == nil || r[f] == "" }
	if none("external_user_id") && (!o.anonymous || none("user_id")) {
		return nil
	}
	call := map[string]any{
		"type":       "track",
		"event":      ev.Name,
		"messageId":  r["id"],
		"timestamp":  time.Unix(r["time"].(int64), 0).UTC().Format(time.RFC3339),
		"properties": pick(r, ev.Properties),
	}
	for k, f := range map[string]string{"userId": "external_user_id", "anonymousId": "user_id"} {
		if !none(f) {
			call[k] = r[f]
		}
	}
	context := map[string]any{}
	for k, renames := range map[string][]fixtures.Rename{"traits": ev.Traits, "device": ev.Device} {
		if m := pick(r, renames); len(m) > 0 {
			context[k] = m
		}
	}
	if len(context) > 0 {
		call["context"] = context
	}
	for k, v := range r {
		switch {
		case v == nil || slices.Contains([]string{"id", "time", "user_id", "external_user_id"}, k):
		case !ev.Names(k) || o.allFields && !slices.ContainsFunc(ev.Properties, func(rn fixtures.Rename) bool { return rn.From == k }):
			call["properties"].(map[string]any)[k] = v
		}
	}
	return call
}

// pick is the non-null fields of r that renames name, under their new names.
func pick(r map[string]any, renames []fixtures.Rename) map[string]any {
	out := map[string]any{}
	for _, rn := range renames {
		if v := r[rn.From]; v != nil {
			out[rn.To] = v
		}
	}
	return out
}

func jsonText(t *testing.T, v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
