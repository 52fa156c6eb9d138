package main

import (
	"encoding/json"
	"fmt"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// delivery is what one pipeline delivered to the stand-in.
type delivery struct {
	accepted int               // calls accepted, duplicates included
	unique   int               // distinct messageIds
	requests int               // requests received
	calls    map[string]string // messageId -> the call's JSON with keys sorted; nil unless the stand-in keeps calls
}

// delivered reads what the stand-in received since its last Reset; keep
// says whether it keeps calls (started without WithRecordIDsOnly).
func delivered(srv *segmentapi.Server, keep bool) (delivery, error) {
	stats := srv.Stats()
	d := delivery{accepted: stats.Accepted, unique: srv.UniqueMessageIDs(), requests: stats.Requests}
	if !keep {
		return d, nil
	}
	d.calls = make(map[string]string, d.unique)
	for _, c := range srv.Accepted() {
		id, _ := c["messageId"].(string)
		b, err := json.Marshal(c) // maps marshal with their keys sorted
		if err != nil {
			return d, err
		}
		d.calls[id] = string(b)
	}
	return d, nil
}

// sameAs says how d differs from want: in the number of calls, or (when
// both kept them) in a call; nil when they are the same.
func (d delivery) sameAs(want delivery) error {
	if d.accepted != want.accepted || d.unique != want.unique {
		return fmt.Errorf("%d calls (%d messageIds), against %d (%d)", d.accepted, d.unique, want.accepted, want.unique)
	}
	if d.calls == nil || want.calls == nil {
		return nil
	}
	for id, call := range want.calls {
		if got, ok := d.calls[id]; !ok {
			return fmt.Errorf("no call %s, against %s", id, call)
		} else if got != call {
			return fmt.Errorf("call %s is\n  %s\nagainst\n  %s", id, got, call)
		}
	}
	return nil
}
