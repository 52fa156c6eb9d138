package brazecurrents

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// lineSink keeps every line logged through its resources, at every level.
type lineSink struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLineSink() *lineSink { return &lineSink{changed: make(chan struct{})} }

// Write takes one record: slog's text handler writes each in one call.
func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, strings.TrimSuffix(string(p), "\n"))
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *lineSink) resources() *service.Resources {
	return service.MockResources(service.MockResourcesOptUseLogger(service.NewLoggerFromSlog(s.logger())))
}

func (s *lineSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// matching are the lines containing substr.
func (s *lineSink) matching(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// count counts the lines holding every one of parts.
func (s *lineSink) count(parts ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			n++
		}
	}
	return n
}

func (s *lineSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// waitFor blocks until n lines contain substr and returns the nth.
func (s *lineSink) waitFor(t *testing.T, substr string, n int) string {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if got := s.matching(substr); len(got) >= n {
			return got[n-1]
		}
		select {
		case <-changed:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("no %d lines containing %q; logs:\n%s", n, substr, strings.Join(s.lines, "\n"))
		}
	}
}

// waitCounts waits, with a bound, until the input's totals satisfy ok: the
// reader counts a batch once the consumer took it, so a test that saw the
// events may be a moment ahead of the counts.
func (r *clockRun) waitCounts(what string, ok func(inputCounts) bool) {
	r.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(r.in.counts()); runtime.Gosched() {
		if time.Now().After(deadline) {
			r.t.Fatalf("the input never got to %s: %+v", what, r.in.counts())
		}
	}
}

// anonymousIn is how many of the events spec writes have no
// external_user_id (the fixtures are seeded: the same spec writes the same).
func anonymousIn(t *testing.T, spec fixtures.FileSpec) int {
	records, err := fixtures.WriteFile(io.Discard, spec)
	if err != nil {
		t.Fatal(err)
	}
	return anonymous(records)
}

// In watch mode the input logs, every summary_interval on its clock, what it
// did in that interval (not since the start), even when that is nothing;
// and at level warn when events awaiting acknowledgement got none through a
// whole interval: the consumer here holds them, as the pipeline does while
// Segment is down.
func TestInputWatchLogsASummaryEachInterval(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nlate_arrival: 1m\nmax_parallel_objects: 1\nbatch_size: 20\nprogress_interval: 0s\nsummary_interval: 1h", dir)
	spec := func(hour time.Time, n int) fixtures.FileSpec {
		return fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 20, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n}
	}
	first, second := spec(at14(0).Add(-time.Hour), 0), spec(at14(0), 1)
	anonFirst, anonSecond := anonymousIn(t, first), anonymousIn(t, second)
	if anonFirst == 0 || anonFirst == 20 || anonSecond == 0 || anonSecond == 20 {
		t.Fatalf("the fixtures have %d and %d of 20 events without external_user_id: the test needs some of each", anonFirst, anonSecond)
	}
	want := writeFixture(t, dir, first)
	r := startClockRun(t, conf, at14(50))
	const summary = "Summary of the last 1h0m0s: "
	tick := func(n int, level, want string) {
		t.Helper()
		r.clock.Advance(time.Hour)
		line := r.logs.waitFor(t, summary, n)
		if !strings.Contains(line, "level="+level) || !strings.Contains(line, want) {
			t.Fatalf("summary %d:\n%s\nwant level %s and\n%s", n, line, level, want)
		}
	}

	// Interval 1: an object read and delivered.
	r.pass(0)
	r.got.waitFor(t, want)
	r.waitCounts("one object done", func(c inputCounts) bool { return c.done == 1 && c.inFlight == 0 })
	tick(1, "INFO", fmt.Sprintf("1 objects read (0 corrupt), 0 left for a later pass, 0 in flight; 20 events read, 20 acknowledged; %d had no external_user_id", anonFirst))

	// Interval 2: another object read, its events held unacknowledged.
	r.stall()
	more := writeFixture(t, dir, second)
	r.poll(1, time.Minute)
	r.got.waitFor(t, union(want, more))
	r.waitCounts("40 events read", func(c inputCounts) bool { return c.read == 40 })
	tick(2, "INFO", fmt.Sprintf("0 objects read (0 corrupt), 0 left for a later pass, 1 in flight; 20 events read, 0 acknowledged; %d had no external_user_id", anonSecond))

	// Interval 3: nothing moved while those events waited: a stall.
	tick(3, "WARN", "0 objects read (0 corrupt), 0 left for a later pass, 1 in flight; 0 events read, 0 acknowledged; 0 had no external_user_id "+
		"(the mapping skips those unless include_anonymous, and always the 0 with no user_id either); stalled: none of the 20 events awaiting acknowledgement 1h0m0s ago got it since")

	// Interval 4: delivered at last.
	r.resume()
	r.waitCounts("two objects done", func(c inputCounts) bool { return c.done == 2 && c.inFlight == 0 })
	tick(4, "INFO", "1 objects read (0 corrupt), 0 left for a later pass, 0 in flight; 0 events read, 20 acknowledged; 0 had no external_user_id")
	if got := r.logs.matching(summary); len(got) != 4 || slices.ContainsFunc(got[:2], func(l string) bool { return strings.Contains(l, "stalled") }) {
		t.Fatalf("want 4 summaries, a stall only in the third:\n%s", strings.Join(got, "\n"))
	}
}

func TestInputSummaryIntervalMustNotBeNegative(t *testing.T) {
	parsed, err := inputSpec().ParseYAML("url: file:///tmp\nwatch: true\nsummary_interval: -1m", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inputFromParsed(parsed, service.MockResources()); err == nil || !strings.Contains(err.Error(), "summary_interval must not be negative") {
		t.Fatalf("got %v", err)
	}
}

// What counts as a stall: work pending as the interval began, and none of it
// moved through the whole interval. Events read near its end and not yet
// acknowledged, or an idle watch, are not one.
func TestIntervalSummaryStalls(t *testing.T) {
	for _, tc := range []struct {
		name      string
		last, now inputCounts
		stalled   string // the line's stall clause; "" for none
	}{
		{"idle", inputCounts{read: 9, acked: 9}, inputCounts{read: 9, acked: 9}, ""},
		{"read, not yet acknowledged", inputCounts{read: 9, acked: 9}, inputCounts{read: 12, acked: 9, inFlight: 1}, ""},
		{"acknowledged", inputCounts{read: 12, acked: 9, inFlight: 1}, inputCounts{read: 12, acked: 10, inFlight: 1}, ""},
		{"nacked", inputCounts{read: 12, acked: 9, inFlight: 1}, inputCounts{read: 12, acked: 9, nacked: 3}, ""},
		{"nothing acknowledged", inputCounts{read: 12, acked: 9, inFlight: 1}, inputCounts{read: 15, acked: 9, inFlight: 2},
			"stalled: none of the 3 events awaiting acknowledgement 1h0m0s ago got it since"},
		{"objects stuck", inputCounts{read: 9, acked: 9, inFlight: 2}, inputCounts{read: 9, acked: 9, inFlight: 2},
			"stalled: 2 objects were in flight 1h0m0s ago, and since then none read an event, got done or failed"},
		{"objects reading", inputCounts{read: 9, acked: 9, inFlight: 2}, inputCounts{read: 10, acked: 9, inFlight: 2}, ""},
		{"object failed", inputCounts{read: 9, acked: 9, inFlight: 2}, inputCounts{read: 9, acked: 9, abandoned: 1, inFlight: 1}, ""},
	} {
		line, stalled := intervalSummary(tc.last, tc.now, time.Hour)
		if stalled != (tc.stalled != "") || !strings.Contains(line, tc.stalled) || (tc.stalled == "" && strings.Contains(line, "stalled")) {
			t.Errorf("%s: stalled %v, %s", tc.name, stalled, line)
		}
	}
}
