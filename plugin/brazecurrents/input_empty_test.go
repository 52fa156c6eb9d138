package brazecurrents

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// On a storage account with a hierarchical namespace, Data Lake's CreateFile
// makes a file visible, empty, before FlushWithClose writes it (notification
// mode skips those events: notification.go). Currents files are never empty,
// so a listing that meets one recently modified leaves it for the next pass,
// where it is read once written; one empty for longer than emptyGrace is
// skipped as done, as before, so that junk does not hold its hour open.
func TestInputEmptyObjectIsReadOnceWritten(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s", dir)
	spec := func(eventType string, n int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3, Seed: 90 + uint64(n), DateHour: at14(0), Offset: n}
	}
	empty := func(s fixtures.FileSpec, modified time.Time) string {
		key := fixtures.Key(s)
		path := filepath.Join(dir, key)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, modified, modified); err != nil {
			t.Fatal(err)
		}
		return key
	}
	opening := empty(spec(emailSend, 0), at14(49))               // created a minute before the first pass
	junk := empty(spec(uninstall, 0), at14(50).Add(-emptyGrace)) // empty for as long as the grace
	first := writeFixture(t, dir, spec(emailSend, 1))
	settled := make(chan [2]string, 8)
	r, err := connectClockRunWith(t, conf, at14(50), func(in *currentsInput) {
		in.objectSettled = func(key, outcome string) { settled <- [2]string{key, outcome} }
	})
	if err != nil {
		t.Fatal(err)
	}
	r.pass(0)
	r.got.waitFor(t, first)
	outcomes := map[string]string{}
	for len(outcomes) < 3 {
		select {
		case s := <-settled:
			outcomes[s[0]] = s[1]
		case <-r.ctx.Done():
			t.Fatalf("objects settled: %v", outcomes)
		}
	}
	if outcomes[junk] != outcomeDone || outcomes[opening] != outcomeAbandoned {
		t.Fatalf("outcomes %v: want the old empty object done, the new one left for the next pass", outcomes)
	}
	if n := r.logs.count("level=WARN", "Skipping empty object", junk); n != 1 {
		t.Fatalf("%d warnings skip %s:\n%s", n, junk, r.logs)
	}

	written := writeFixtureAt(t, dir, opening, spec(emailSend, 0)) // FlushWithClose
	r.poll(1, time.Minute)
	r.got.waitFor(t, written)
	expectExactly(t, r.got, union(first, written))
}
