package brazecurrents

import (
	"testing"
	"time"
)

// An outage starts at its first failure, not a later one, ends once, with
// how long it lasted to the second, and a failure after it starts another.
func TestOutageEndsOnceWithItsLength(t *testing.T) {
	var o outage
	start := at14(0)
	if d, ok := o.ended(start); ok {
		t.Fatalf("ended with no failure: %v", d)
	}
	o.failed(start)
	o.failed(start.Add(5 * time.Second))
	if d, ok := o.ended(start.Add(90*time.Second + 400*time.Millisecond)); !ok || d != 90*time.Second {
		t.Fatalf("ended: %v, %v; want 1m30s, true", d, ok)
	}
	if d, ok := o.ended(start.Add(2 * time.Minute)); ok {
		t.Fatalf("ended twice: %v", d)
	}
	again := start.Add(time.Hour)
	o.failed(again)
	if d, ok := o.ended(again.Add(time.Minute)); !ok || d != time.Minute {
		t.Fatalf("the next outage ended: %v, %v; want 1m0s, true", d, ok)
	}
}
