package brazecurrents

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// collected is what a stream's output received.
type collected struct {
	changed chan struct{} // signalled after each batch
	mu      sync.Mutex
	events  map[string]int            // event id -> times received
	meta    map[string]map[string]any // event id -> metadata
}

func newCollected() *collected {
	return &collected{events: map[string]int{}, meta: map[string]map[string]any{}, changed: make(chan struct{}, 1)}
}

// consume records a batch, as a stream's output.
func (c *collected) consume(_ context.Context, batch service.MessageBatch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		var ev struct{ ID string }
		raw, _ := m.AsBytes()
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		if m.GetError() != nil { // an oversize record, sent on flagged without its content
			index, _ := m.MetaGetMut(MetaRecordIndex)
			ev.ID = flaggedID(index.(int64))
		}
		c.events[ev.ID]++
		meta := map[string]any{}
		_ = m.MetaWalkMut(func(k string, v any) error { meta[k] = v; return nil })
		c.meta[ev.ID] = meta
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// flaggedID is how collected names a message flagged with an error: by its
// record index.
func flaggedID(index int64) string { return fmt.Sprintf("flagged %d", index) }

func (c *collected) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[id]
}

func (c *collected) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.events {
		n += v
	}
	return n
}

// streamOf builds a stream of the braze_currents input with inputYAML into
// a consumer that records every event; extra is appended to the config
// (resources, for example).
func streamOf(t *testing.T, inputYAML, extra string) (*service.Stream, *collected) {
	t.Helper()
	b := service.NewStreamBuilder()
	if err := b.AddInputYAML("braze_currents:\n" + indent(inputYAML, "  ")); err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		if err := b.AddResourcesYAML(extra); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	got := newCollected()
	if err := b.AddBatchConsumerFunc(got.consume); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return s, got
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

// runToEnd runs a one-pass stream and fails the test if it does not end.
func runToEnd(t *testing.T, s *service.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

// fileTree writes fixtures under a temp dir and returns its file:// URL and
// every event id by event type.
func fileTree(t *testing.T, opts fixtures.TreeOptions) (string, []fixtures.Written) {
	t.Helper()
	dir := t.TempDir()
	written, err := fixtures.WriteTree(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + dir, written
}

func ids(written []fixtures.Written, keep func(fixtures.Written) bool) map[string]bool {
	out := map[string]bool{}
	for _, w := range written {
		if keep == nil || keep(w) {
			for _, r := range w.Records {
				out[r["id"].(string)] = true
			}
		}
	}
	return out
}

// expectExactly checks that the stream delivered exactly the wanted events,
// each once.
func expectExactly(t *testing.T, got *collected, want map[string]bool) {
	t.Helper()
	for id := range want {
		if n := got.count(id); n != 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
	if got.total() != len(want) {
		t.Fatalf("%d events delivered, want %d", got.total(), len(want))
	}
}

func TestInputOnePassOverEveryEventType(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 15, Seed: 5})
	s, got := streamOf(t, "url: "+url+"\ninclude_event_types: [\"*\"]\nmax_parallel_objects: 3\nbatch_size: 7", "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	w := written[0]
	meta := got.meta[w.Records[0]["id"].(string)]
	if meta[MetaKey] != w.Key || meta[MetaEventType] != w.Spec.EventType || meta[MetaBucket] != url || meta[MetaObjectSize] == nil || meta[MetaModTime] == nil {
		t.Fatalf("metadata %v for %s", meta, w.Key)
	}
}

func TestInputFiltersEventTypesAndHours(t *testing.T) {
	// 24 files per type span two queue hours (12 files an hour).
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 24, RecordsPerFile: 2, Seed: 6,
		EventTypes: []string{"users.messages.email.Send", "users.messages.email.Click", "users.messages.sms.Send"}})
	secondHour := fixtures.DefaultDateHour.Add(time.Hour)
	s, got := streamOf(t, fmt.Sprintf(`url: %s
include_event_types: ["users.messages.email.*"]
exclude_event_types: ["*.Click"]
since: %s`, url, secondHour.Format(DateHourLayout)), "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, func(w fixtures.Written) bool {
		return w.Spec.EventType == "users.messages.email.Send" && !w.Spec.DateHour.Before(secondHour)
	}))
}

// The README's backfill recipe: a window run, then a full run on the
// default checkpoint key. The window keeps a checkpoint of its own, so the
// full run still reads the hours the window skipped.
func TestInputCheckpointResumesWhereItStopped(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 24, RecordsPerFile: 3, Seed: 7,
		EventTypes: []string{"users.messages.email.Send", "users.behaviors.Uninstall"}})
	firstHour := fixtures.DefaultDateHour
	conf := "url: " + url + "\ncheckpoint:\n  in_bucket: true\n"
	window := conf + "since: " + firstHour.Add(time.Hour).Format(DateHourLayout) + "\nuntil: " + firstHour.Add(time.Hour).Format(DateHourLayout)
	inWindow := func(w fixtures.Written) bool { return w.Spec.DateHour.Equal(firstHour.Add(time.Hour)) }
	s, got := streamOf(t, window, "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, inWindow))

	// The same window again reads nothing: it resumes its own checkpoint.
	s, got = streamOf(t, window, "")
	runToEnd(t, s)
	expectExactly(t, got, map[string]bool{})

	// The full run reads every event, the window's hour included: nothing
	// before or after the window was counted as done.
	s, got = streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, func(fixtures.Written) bool { return true }))

	// A third run finds nothing new.
	s, got = streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, map[string]bool{})
}

// Without include_event_types (or with an empty pattern, as a config's
// unset variable gives), the input reads the 50 types the mapping sends.
func TestInputReadsTheSegmentTypesByDefault(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 2, Seed: 6})
	segment := fixtures.SegmentEvents()
	for _, conf := range []string{"url: " + url, "url: " + url + "\ninclude_event_types: [\"\"]"} {
		s, got := streamOf(t, conf, "")
		runToEnd(t, s)
		expectExactly(t, got, ids(written, func(w fixtures.Written) bool {
			_, ok := segment[w.Spec.EventType]
			return ok
		}))
	}
}

func TestInputCheckpointInCacheResource(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 3, Seed: 8,
		EventTypes: []string{"users.messages.email.Send"}})
	cacheDir := t.TempDir()
	cache := "cache_resources:\n  - label: progress\n    file:\n      directory: " + cacheDir + "\n"
	conf := "url: " + url + "\ncheckpoint:\n  cache: progress\n"
	s, got := streamOf(t, conf, cache)
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	s, got = streamOf(t, conf, cache)
	runToEnd(t, s)
	expectExactly(t, got, map[string]bool{})
	entries, _ := os.ReadDir(cacheDir)
	if len(entries) == 0 || len(entries) > 2 {
		t.Fatalf("cache directory holds %d entries, want the checkpoint's one or two slots", len(entries))
	}
}

func TestInputShardsSplitObjectsWithoutOverlap(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 4, RecordsPerFile: 2, Seed: 9})
	all := &collected{events: map[string]int{}}
	for shard := range 3 {
		s, got := streamOf(t, fmt.Sprintf("url: %s\ninclude_event_types: [\"*\"]\nshard: %d/3", url, shard), "")
		runToEnd(t, s)
		if got.total() == 0 {
			t.Fatalf("shard %d/3 read nothing", shard)
		}
		for id, n := range got.events {
			all.events[id] += n
		}
	}
	expectExactly(t, all, ids(written, nil))
}

func TestInputSkipsCorruptObjectsAndGoesOn(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 5, Seed: 10,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"}})
	dir := strings.TrimPrefix(url, "file://")
	bad := filepath.Join(dir, filepath.Dir(written[0].Key), "dataexport.prod-01.S3.integration.x+9+0000000009.avro")
	if err := os.WriteFile(bad, []byte("garbage, not avro"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, got := streamOf(t, "url: "+url+"\ncheckpoint:\n  in_bucket: true", "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	// The corrupt object was recorded as done: a second pass does not read it.
	bucket, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	raw, err := newSlotted(&bucketStore{bucket: bucket}, "currents-connect/checkpoints/currents-connect-checkpoint-currents-shard-0-of-1.json", nil).load(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var doc checkpointDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Partitions) != 2 {
		t.Fatalf("checkpoint %s", raw)
	}
}

// A checkpoint kept in a file:// bucket on a volume of its own (a
// container's mounted directory) must not go through os.TempDir, whose
// rename into the bucket fails with "invalid cross-device link". A TMPDIR
// that does not exist stands for one on another filesystem.
func TestInputFileBucketCheckpointNeedsNoTempDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "elsewhere"))
	bucket, err := openChecked(context.Background(), "file://"+dir, "currents/", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	store := &bucketStore{bucket: bucket, name: dir}
	if err := store.put(context.Background(), "currents/checkpoint.json", []byte(`{}`)); err != nil {
		t.Fatalf("checkpoint write used TMPDIR: %v", err)
	}
}

func TestInputMissingBucketFailsClearly(t *testing.T) {
	_, err := openChecked(context.Background(), "file:///no/such/dir/anywhere", "currents/", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "/no/such/dir/anywhere") {
		t.Fatalf("error %v", err)
	}
}

// waitFor waits until every wanted event arrived, or fails after a bound.
func (c *collected) waitFor(t *testing.T, want map[string]bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		missing := 0
		for id := range want {
			if c.count(id) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%d of %d events never arrived", missing, len(want))
		}
	}
}

func TestInputWatchPicksUpNewObjects(t *testing.T) {
	dir := t.TempDir()
	checkWatchPicksUpNewObjects(t, "url: file://"+dir, func(spec fixtures.FileSpec) map[string]bool {
		return writeFixture(t, dir, spec)
	})
}

// checkWatchPicksUpNewObjects watches with inputYAML while write puts one
// object in the bucket, then another: each is read, the first only once.
func checkWatchPicksUpNewObjects(t *testing.T, inputYAML string, write func(fixtures.FileSpec) map[string]bool) {
	t.Helper()
	hour := time.Now().UTC().Truncate(time.Hour)
	spec := fixtures.FileSpec{EventType: "users.messages.email.Send", Records: 4, Seed: 11, DateHour: hour}
	first := write(spec)
	s, got := streamOf(t, inputYAML+"\nwatch: true\npoll_interval: 10ms\nprogress_interval: 0s", "")
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	got.waitFor(t, first)

	spec.Offset, spec.Seed = 4, 12
	second := write(spec)
	got.waitFor(t, second)
	if err := s.StopWithin(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	for id := range first {
		if n := got.count(id); n != 1 {
			t.Fatalf("event %s of the first object delivered %d times", id, n)
		}
	}
}

func writeFixture(t *testing.T, dir string, spec fixtures.FileSpec) map[string]bool {
	t.Helper()
	return writeFixtureAt(t, dir, fixtures.Key(spec), spec)
}

// writeFixtureAt writes spec's object at key, in a layout of the test's.
func writeFixtureAt(t *testing.T, dir, key string, spec fixtures.FileSpec) map[string]bool {
	t.Helper()
	path := filepath.Join(dir, key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		t.Fatal(err)
	}
	records, err := fixtures.WriteFile(f, spec)
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	// Renamed into place, as an object store makes an upload visible at once.
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range records {
		want[r["id"].(string)] = true
	}
	return want
}

// A destination beside the prefix may share its first letters
// ("currents-done" beside "currents/"): it is outside it.
func TestInputDeletesOrMovesDoneObjects(t *testing.T) {
	for _, mode := range []string{"delete_done: true", "move_done_to: archive", "move_done_to: currents-done"} {
		url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 2, Seed: 13,
			EventTypes: []string{"users.messages.email.Send"}})
		dir := strings.TrimPrefix(url, "file://")
		s, got := streamOf(t, "url: "+url+"\n"+mode, "")
		runToEnd(t, s)
		expectExactly(t, got, ids(written, nil))
		for _, w := range written {
			if _, err := os.Stat(w.Path); !os.IsNotExist(err) {
				t.Fatalf("%s: %s still there", mode, w.Key)
			}
			moved := filepath.Join(dir, strings.TrimPrefix(mode, "move_done_to: "), strings.TrimPrefix(w.Key, "currents/"))
			if _, err := os.Stat(moved); (err == nil) != strings.HasPrefix(mode, "move") {
				t.Fatalf("%s: moved copy %s: %v", mode, moved, err)
			}
		}
	}
}
