package brazecurrents

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// In notification mode an object's spell of failure ends when this replica
// reads it, which may never happen: another replica read it, or the queue
// dead-lettered its notification. A spell no delivery failed for an hour
// (four times the longest hold-back) is forgotten, on the input's clock,
// and at most 10,000 are kept, the least recently failed forgotten first:
// a later failure of a forgotten key starts a spell of its own, logged at
// error and held the shortest delay, not 15 minutes at debug level.
func TestNotificationUnreadableSpellsAreForgotten(t *testing.T) {
	logs := newLineSink()
	in, err := inputOf(t, "url: file://"+t.TempDir()+"\nnotifications: mem://spells", logs.resources())
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(at14(0))
	in.clock = clock
	key := func(i int) string { return fmt.Sprintf("key-%05d", i) }
	fail := func(k string, want time.Duration, errors int) {
		t.Helper()
		if d := in.logUnread(k, 5, errDenied); d != want {
			t.Fatalf("%s held %v, want %v", k, d, want)
		}
		if n := logs.count("level=ERROR", k); n != errors {
			t.Fatalf("%s: %d errors logged, want %d:\n%s", k, n, errors, logs)
		}
	}
	bad := key(0)
	fail(bad, minSendBackDelay, 1)
	clock.Advance(50 * time.Minute)
	fail(bad, maxSendBackDelay, 1) // the same spell, 50 minutes long
	clock.Advance(forgetUnreadable)
	fail(bad, maxSendBackDelay, 1) // an hour without a failure: kept
	clock.Advance(forgetUnreadable + time.Second)
	fail(bad, minSendBackDelay, 2) // forgotten: a spell of its own

	for i := 1; i <= maxUnreadable; i++ {
		if d := in.logUnread(key(i), 5, errDenied); d != minSendBackDelay {
			t.Fatalf("%s held %v, want %v", key(i), d, minSendBackDelay)
		}
	}
	if n := in.unreadable.count(); n != maxUnreadable { // key 0 forgotten
		t.Fatalf("%d spells kept, want %d", n, maxUnreadable)
	}
	clock.Advance(time.Minute)
	fail(key(1), 2*time.Minute, 1) // kept: key 0 failed less recently
	fail(bad, minSendBackDelay, 3) // forgotten, the least recently failed
	fail(key(3), 2*time.Minute, 1) // kept: key 2 was forgotten for key 0
	fail(key(2), minSendBackDelay, 2)
}

var errDenied = errors.New("AccessDenied")
