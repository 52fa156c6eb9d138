package bloblang_test

import (
	"path"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// TestPatternsSelectWhatTheInputReads checks that the mapping's event_types and exclude_event_types
// select, for every Currents event type, what the braze_currents input reads for the same pattern
// (path.Match, entries trimmed): the configs pass BRAZE_EVENT_TYPES to both, and an event the input
// reads but the mapping filters out is dropped without a word.
func TestPatternsSelectWhatTheInputReads(t *testing.T) {
	t.Chdir("..") // imports resolve from the repository root
	exec, err := bloblang.Parse(`import "./bloblang/currents_to_segment.blobl"
root = this.apply("currents_to_segment")`)
	if err != nil {
		t.Fatal(err)
	}
	patterns := []string{
		"*", "users.*", "*.Send", "users.messages.email.*", "users.messages.email.Send", "users.messages.*.Send",
		"users.*.*.Abort", "*.*", "*Click", "users.messages.?ms.*", "users.messages.[es]*.Send",
		"users.messages.[^e]*.Send", "users.messages.email.Sen?", "u*s*", `users.messages.\email.Send`,
		"users.behaviors.*", "*.app.*", " users.canvas.Entry ",
	}
	types := fixtures.EventTypes()
	if len(types) < 90 {
		t.Fatalf("%d event types, want the 96 of the facts", len(types))
	}
	for _, p := range patterns {
		for _, opt := range []string{"event_types", "exclude_event_types"} {
			for _, et := range types {
				want, _ := path.Match(strings.TrimSpace(p), et) // the input trims entries
				if opt == "exclude_event_types" {
					want = !want
				}
				out, err := exec.Query(map[string]any{
					"event":      map[string]any{"id": "00000000-0000-4000-8000-000000000001", "time": int64(1735689600), "user_id": "65a1f0c2b3d4e5f6a7b8c901", "external_user_id": "customer-0001", "name": "clicked"},
					"event_type": et,
					"options":    map[string]any{opt: []any{p}, "other_event_types": "send"},
				})
				if err != nil && err != bloblang.ErrRootDeleted {
					t.Fatalf("%s %q, %s: %v", opt, p, et, err)
				}
				if got := err == nil && out != nil; got != want {
					t.Errorf("%s %q, %s: sent %v, the input reads it: %v", opt, p, et, got, want)
				}
			}
		}
	}
}
