package brazecurrents

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// Settings only a change of the config can fix fail at construction, which
// stops the stream; an error from Connect would be retried for ever.
func TestInputRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"bare path", "url: /tmp/x", []string{`url "/tmp/x" has no scheme`, "this build opens azblob, file, gs, s3"}},
		{"unknown scheme", "url: mem://bucket", []string{`url "mem://bucket": unknown scheme "mem", this build opens azblob, file, gs, s3`}},
		{"file URL with a host", "url: file://data/currents", []string{`url "file://data/currents": a file URL takes an absolute path`}},
		{"unknown bucket parameter", "url: s3://acme?regin=us-east-1", []string{`url "s3://acme": unknown query parameter "regin"`}},
		{"unknown bucket parameter, gs", "url: gs://acme?anonymus=true", []string{`url "gs://acme": invalid query parameter "anonymus"`}},
		{"missing directory", "url: file:///no/such/dir/anywhere", []string{`url "file:///no/such/dir/anywhere"`, "no such file or directory"}},
		{"file, not a directory", "url: file://" + writeTempFile(t), []string{"is not a directory"}},
		{"shard", "url: file:///tmp\nshard: 3/3", []string{"0 <= i < N"}},
		{"since", "url: file:///tmp\nsince: yesterday", []string{"since:", "not an hour"}},
		{"until", "url: file:///tmp\nuntil: tomorrow", []string{"until:", "not an hour"}},
		// An empty window would read nothing and end, as if the bucket were empty.
		{"until before since", "url: file:///tmp\nsince: 2026-02-01\nuntil: 2026-01-31-05", []string{"until 2026-01-31-05 is before since 2026-02-01-00"}},
		{"include pattern", "url: file:///tmp\ninclude_event_types: ['[']", []string{"include_event_types: event type pattern"}},
		{"exclude pattern", "url: file:///tmp\nexclude_event_types: ['a,[']", []string{"exclude_event_types: event type pattern"}},
		{"move inside prefix", "url: file:///tmp\nmove_done_to: currents/done", []string{"inside prefix"}},
		{"move inside prefix, spelt with ./", "url: file:///tmp\nmove_done_to: ./currents/done/", []string{"inside prefix"}},
		// The prefix itself would copy each done object onto itself, then delete it.
		{"move to the prefix", "url: file:///tmp\nmove_done_to: currents", []string{`move_done_to "currents" is prefix "currents/" itself`, "copied onto its own key and then deleted"}},
		{"move to the prefix, with its slash", "url: file:///tmp\nprefix: exports/currents\nmove_done_to: /exports/currents/", []string{"is prefix", "itself"}},
		{"move with no prefix", "url: file:///tmp\nprefix: ''\nmove_done_to: archive", []string{`move_done_to "archive" needs a prefix`}},
		// The walk would never settle an hour there (it learns partitions from the event_type= directories below).
		{"prefix inside an event type", "url: file:///tmp\nprefix: currents/dataexport.prod-01.S3.integration.abc/event_type=users.messages.email.Send/",
			[]string{`prefix "currents/dataexport.prod-01.S3.integration.abc/event_type=users.messages.email.Send/" is inside an event type's directory`, `include_event_types to "users.messages.email.Send"`}},
		{"two checkpoints", "url: file:///tmp\ncheckpoint: {cache: c, in_bucket: true}", []string{"set cache or in_bucket, not both"}},
		// Looked up only at each use, it failed every connect, for ever.
		{"undefined cache", "url: file:///tmp\ncheckpoint: {cache: progres}", []string{`checkpoint.cache: cache resource "progres" was not found`, "given with -r"}},
		// A negative late_arrival would settle hours before they end.
		{"negative late arrival", "url: file:///tmp\nlate_arrival: -2h", []string{"late_arrival must not be negative, got -2h0m0s"}},
		{"negative late lookback", "url: file:///tmp\nlate_lookback: -1h", []string{"late_lookback must not be negative (0 turns the lookback off), got -1h0m0s"}},
		{"no poll interval", "url: file:///tmp\nwatch: true\npoll_interval: 0s", []string{"poll_interval must be positive with watch, got 0s"}},
		{"negative poll interval", "url: file:///tmp\nwatch: true\npoll_interval: -1m", []string{"poll_interval must be positive with watch"}},
		{"short lease", "url: file:///tmp\ncheckpoint: {lease: 10ms}", []string{"checkpoint.lease must be at least 1s"}},
		{"no readers", "url: file:///tmp\nmax_parallel_objects: 0", []string{"must be at least 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inputOf(t, tc.conf, service.MockResources())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// A cloud bucket is not reached at construction (its driver checks only the
// URL's settings): one that is unreachable (an outage) fails Connect, which
// Connect's caller retries.
func TestInputAcceptsGoodURLs(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT", "acct") // or azblob has no account to name
	for _, url := range []string{"s3://my-bucket?region=us-east-1", "gs://my-bucket", "azblob://my-container", "file:///tmp", "file://./", "FILE:///tmp"} {
		if _, err := inputOf(t, "url: "+url, service.MockResources()); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

// Zero late_arrival (files never land after their hour) and zero
// late_lookback (no look back at late files) are choices, and
// poll_interval matters only with watch.
func TestInputAcceptsBoundarySettings(t *testing.T) {
	for _, conf := range []string{"late_arrival: 0s", "late_lookback: 0s", "poll_interval: 0s", "watch: true\npoll_interval: 1ms"} {
		if _, err := inputOf(t, "url: file:///tmp\n"+conf, service.MockResources()); err != nil {
			t.Errorf("%q: %v", conf, err)
		}
	}
}

func writeTempFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func inputOf(t *testing.T, conf string, mgr *service.Resources) (*currentsInput, error) {
	t.Helper()
	parsed, err := inputSpec().ParseYAML(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	return inputFromParsed(parsed, mgr)
}

// loggingResources are mock resources whose logger writes to a file, which
// is safe for the input's goroutines.
func loggingResources(t *testing.T) (*service.Resources, string) {
	t.Helper()
	logs := filepath.Join(t.TempDir(), "logs")
	f, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(f, nil)))
	return service.MockResources(service.MockResourcesOptUseLogger(logger)), logs
}

// warnings are the lines of a log file at level WARN but the summary every
// one-pass run ends with.
func warnings(t *testing.T, logs string) []string {
	t.Helper()
	text, err := os.ReadFile(logs)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "level=WARN") && !strings.Contains(line, "Run done:") {
			out = append(out, line)
		}
	}
	return out
}

// The plugin's list of event types is the fixtures' facts, no more, no less.
func TestKnownEventTypesAreTheFacts(t *testing.T) {
	if !slices.Equal(knownEventTypes, fixtures.EventTypes()) {
		t.Fatalf("event_types.txt differs from tests/fixtures/facts/fields.tsv: regenerate it with go generate ./plugin/brazecurrents")
	}
}

// The types the input reads by default are those the mapping sends (its
// match arms, each in the block of its namespace, where alone it can match)
// and those of Braze's table in the fixtures' facts.
func TestSegmentEventTypesAreTheMappings(t *testing.T) {
	blobl, err := os.ReadFile("../../bloblang/currents_to_segment.blobl")
	if err != nil {
		t.Fatal(err)
	}
	arm := regexp.MustCompile(`^\s*"(users\.[^"]+)" => \{$`)
	beyondArm := regexp.MustCompile(`^\s*"(users\.[^"]+)" => \{.+$`) // map beyond_braze's
	block := regexp.MustCompile(`\$type\.has_prefix\("([^"]+)"\) \{ match \$type \{$`)
	var mapped, beyond []string
	namespace := ""
	for i, line := range strings.Split(string(blobl), "\n") {
		if m := block.FindStringSubmatch(line); m != nil {
			namespace = m[1]
		}
		if m := beyondArm.FindStringSubmatch(line); m != nil {
			beyond = append(beyond, m[1])
		}
		if m := arm.FindStringSubmatch(line); m != nil {
			mapped = append(mapped, m[1])
			if !strings.HasPrefix(m[1], namespace) {
				t.Errorf("currents_to_segment.blobl:%d: the arm of %s is in the block of %q, where it never matches", i+1, m[1], namespace)
			}
		}
	}
	slices.Sort(mapped)
	facts := fixtures.SegmentEventTypes()
	if !slices.Equal(segmentEventTypes, mapped) || !slices.Equal(segmentEventTypes, facts) {
		t.Fatalf("segment_event_types.txt (%d types), the mapping's (%d) and segment_events.tsv's (%d) differ: regenerate it with go generate ./plugin/brazecurrents",
			len(segmentEventTypes), len(mapped), len(facts))
	}
	slices.Sort(beyond)
	if listed := strings.Fields(beyondBrazeEventTypesText); len(beyond) == 0 || !slices.Equal(listed, beyond) {
		t.Fatalf("beyond_braze_event_types.txt %q and the mapping's beyond_braze %q differ: regenerate it with go generate ./plugin/brazecurrents", listed, beyond)
	}
}

// A pattern that matches no known event type is named once at start, in
// include_event_types and exclude_event_types alike.
func TestInputWarnsOfPatternsMatchingNoEventType(t *testing.T) {
	mgr, logs := loggingResources(t)
	conf := `url: file:///tmp
include_event_types: ["nonsense,users.mesages.email.*", "users.messages.email.*", "nonsense", "users.*.Send"]
exclude_event_types: ["*.Clik", "*.Click"]`
	if _, err := inputOf(t, conf, mgr); err != nil {
		t.Fatal(err)
	}
	logged := warnings(t, logs)
	for _, want := range []string{`include_event_types: \"nonsense\"`, `include_event_types: \"users.mesages.email.*\"`, `exclude_event_types: \"*.Clik\"`} {
		n := 0
		for _, w := range logged {
			if strings.Contains(w, want) && strings.Contains(w, "matches none of the 96 Currents event types") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s warned %d times, want once: %q", want, n, logged)
		}
	}
	if len(logged) != 3 {
		t.Errorf("%d warnings, want 3: %q", len(logged), logged)
	}
}

// readOnePass connects the input, acknowledges every batch until the input
// ends, and closes it.
func readOnePass(t *testing.T, in *currentsInput) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		_, ack, err := in.ReadBatch(ctx)
		if errors.Is(err, service.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = ack(ctx, nil)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// A listing that finds no Currents export under the prefix says so, naming
// the bucket and the prefix: a wrong url or prefix would read nothing.
func TestInputWarnsWhenThePrefixHoldsNoExport(t *testing.T) {
	empty := t.TempDir()
	foreign := t.TempDir()
	if err := os.MkdirAll(filepath.Join(foreign, "currents", "exports"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "currents", "exports", "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := t.TempDir()
	if _, err := fixtures.WriteTree(export, fixtures.TreeOptions{RecordsPerFile: 2, EventTypes: []string{"users.messages.email.Send"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, want string
	}{
		{empty, `Found nothing under prefix \"currents/\" of file://` + empty + ": check url and prefix"},
		{foreign, `Found no Currents export under prefix \"currents/\" of file://` + foreign + ": no event_type= directory and no .avro object"},
		{export, ""},
	} {
		wantOnePassWarning(t, "url: file://"+tc.dir+"\nprogress_interval: 0s", tc.want)
	}
}

// wantOnePassWarning reads one pass of the input of conf and checks its
// warnings: none when want is empty, else one, containing want.
func wantOnePassWarning(t *testing.T, conf, want string) {
	t.Helper()
	mgr, logs := loggingResources(t)
	in, err := inputOf(t, conf, mgr)
	if err != nil {
		t.Fatal(err)
	}
	readOnePass(t, in)
	logged := warnings(t, logs)
	switch {
	case want == "" && len(logged) > 0:
		t.Errorf("%q: warnings %q, want none", conf, logged)
	case want != "" && (len(logged) != 1 || !strings.Contains(logged[0], want)):
		t.Errorf("%q: warnings %q, want one containing %q", conf, logged, want)
	}
}

// In watch mode the warning comes once, not at every poll, and again only
// after a listing found an export in between. The bucket is named without
// its query.
func TestInputWarnsOfNoExportOncePerStretch(t *testing.T) {
	mgr, logs := loggingResources(t)
	in := newCurrentsInput(inputConfig{url: "s3://my-bucket?region=us-east-1", prefix: "currents/"}, mgr)
	for _, w := range []walker{{}, {entries: 2}, {}, {entries: 1, layout: true}, {}} {
		in.warnNoExport(&w)
	}
	logged := warnings(t, logs)
	if len(logged) != 2 || !strings.Contains(logged[0], `Found nothing under prefix \"currents/\" of s3://my-bucket:`) || !strings.Contains(logged[1], "Found nothing") {
		t.Fatalf("warnings %q, want two: the first empty listing and the first after an export was found", logged)
	}
}

// A day as since starts at its hour 00, a day as until ends after its hour
// 23: a backfill until a day and a run since the next one read every hour
// between them, once. The default checkpoint key names the hours.
func TestInputDayBoundsTakeWholeDays(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	file := func(hour time.Time, seed uint64) map[string]bool {
		return writeFixture(t, dir, fixtures.FileSpec{EventType: emailSend, Records: 3, Seed: seed, DateHour: hour})
	}
	before, first := file(day.Add(-time.Hour), 40), file(day, 41)
	fifth, last := file(day.Add(5*time.Hour), 42), file(day.Add(23*time.Hour), 43)
	next := file(day.Add(24*time.Hour), 44)
	for _, tc := range []struct {
		window, key string
		want        map[string]bool
	}{
		{"since: 2026-01-31\nuntil: 2026-01-31", "-since-2026-01-31-00-until-2026-01-31-23", union(first, fifth, last)},
		{"until: 2026-01-30", "-until-2026-01-30-23", before},
		{"since: 2026-02-01", "-since-2026-02-01-00", next},
	} {
		conf := "url: file://" + dir + "\nprogress_interval: 0s\n" + tc.window
		in, err := inputOf(t, conf, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(in.conf.ckptKey, tc.key) {
			t.Errorf("%q: checkpoint key %q, want it to end in %q", tc.window, in.conf.ckptKey, tc.key)
		}
		s, got := streamOf(t, conf, "")
		runToEnd(t, s)
		expectExactly(t, got, tc.want)
	}
}
