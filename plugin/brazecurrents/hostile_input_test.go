package brazecurrents

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// TestInputReportsHostileObjects puts decompression bombs, a lying snappy
// block, giant records and blocks and a non-Currents schema beside good
// objects, and checks that the input delivers every good event once,
// reports each hostile object by key, and counts them.
func TestInputReportsHostileObjects(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 2, RecordsPerFile: 50, Seed: 21,
		EventTypes: []string{fixtures.HostileEventType, "users.messages.email.Click"}})
	want := ids(written, nil)
	objects := map[string][]byte{ // what the log says about it -> the object
		"decompresses beyond": hostile(t, func(w io.Writer) error { return fixtures.DeflateBomb(w, 1024) }),
		"zstandard block":     hostile(t, func(w io.Writer) error { return fixtures.ZstdBomb(w, 1024) }),
		"claims 1073741824":   hostile(t, func(w io.Writer) error { return fixtures.SnappyLiar(w, 1<<30, 1<<20) }),
		"deflate block":       hostile(t, func(w io.Writer) error { return fixtures.GiantRecords(w, "deflate", 1, 50<<20) }),
		blockLimit:            hostile(t, func(w io.Writer) error { return fixtures.GiantRecords(w, "null", 1, avro.MaxBlockBytes) }),
		"is not a Currents event schema": ocfFile(t, `{"type":"record","name":"com.example.Event","fields":[{"name":"id","type":"string"}]}`,
			"null", []any{map[string]any{"id": "not-currents"}}),
		"record 6 of": ocfFile(t, mixedSchema, "null", oversizeRecords()),
	}
	for _, r := range oversizeRecords() {
		want[r.(map[string]any)["id"].(string)] = true
	}
	// Records 3 and 6, over the record limit, go on flagged with an error.
	delete(want, "id-3")
	delete(want, "id-6")
	want[flaggedID(3)], want[flaggedID(6)] = true, true
	keys := map[string]string{}
	for fragment, data := range objects {
		keys[fragment] = putObject(t, url, len(keys), data)
	}

	got := newCollected()
	lines := runLogged(t, "url: "+url+"\nmax_parallel_objects: 2\nbatch_size: 100", got.consume)
	expectExactly(t, got, want)
	text := strings.Join(lines, "\n")
	for fragment, key := range keys {
		if !logged(lines, key, fragment, "level=ERROR") {
			t.Errorf("no error naming %s with %q:\n%s", key, fragment, text)
		}
	}
	// The logger writes a metric's attributes in no fixed order.
	for name, value := range map[string]string{"braze_currents_objects_corrupt": "value=6", "braze_currents_records_rejected": "value=2"} {
		if !loggedFields(lines, "name="+name, value) {
			t.Errorf("no %s counter with %s:\n%s", name, value, text)
		}
	}
}

// With delete_done or move_done_to, a corrupt object is recorded as done but
// left where it is: the events after its damage were never sent, and it is
// all that holds them. Here one cannot be decoded at all (an avro.codec the
// decoder refuses, xz) and one is cut short after its first block, whose
// events are sent; a clean object beside them is still deleted or moved.
func TestInputDeleteDoneKeepsCorruptObjects(t *testing.T) {
	for _, mode := range []string{"delete_done: true", "move_done_to: archive"} {
		dir := t.TempDir()
		spec := func(n int, codec string) fixtures.FileSpec {
			return fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 10, BlockRecords: 5,
				Seed: 30 + uint64(n), DateHour: at14(0), Offset: n, Codec: codec}
		}
		clean := writeFixture(t, dir, spec(0, "null"))
		write := func(spec fixtures.FileSpec, damage func([]byte) []byte) (string, []map[string]any) {
			var b bytes.Buffer
			records, err := fixtures.WriteFile(&b, spec)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, fixtures.Key(spec))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, damage(b.Bytes()), 0o644); err != nil {
				t.Fatal(err)
			}
			return path, records
		}
		xz, _ := write(spec(1, "deflate"), func(raw []byte) []byte {
			out := bytes.Replace(raw, []byte("\x14avro.codec\x0edeflate"), []byte("\x14avro.codec\x04xz"), 1)
			if bytes.Equal(out, raw) {
				t.Fatal("no avro.codec deflate in the fixture's header")
			}
			return out
		})
		cut, records := write(spec(2, "null"), func(raw []byte) []byte { return raw[:len(raw)-40] })
		want := maps.Clone(clean)
		for _, r := range records[:5] { // the first block
			want[r["id"].(string)] = true
		}

		got := newCollected()
		lines := runLogged(t, "url: file://"+dir+"\n"+mode, got.consume)
		expectExactly(t, got, want)
		for _, path := range []string{xz, cut} {
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%s: the corrupt object is gone: %v", mode, err)
			}
			key, _ := filepath.Rel(dir, path)
			if !logged(lines, "level=ERROR", "Skipping corrupt object", key, "kept at that key for an operator") {
				t.Errorf("%s: no error says %s was kept:\n%s", mode, key, strings.Join(lines, "\n"))
			}
		}
		if _, err := os.Stat(filepath.Join(dir, fixtures.Key(spec(0, "null")))); !os.IsNotExist(err) {
			t.Fatalf("%s: the clean object is still there: %v", mode, err)
		}
		if !loggedFields(lines, "name=braze_currents_objects_corrupt", "value=2") {
			t.Errorf("%s: braze_currents_objects_corrupt is not 2:\n%s", mode, strings.Join(lines, "\n"))
		}
	}
}

// loggedFields says whether a line holds every one of fields, whole.
func loggedFields(lines []string, fields ...string) bool {
	for _, l := range lines {
		have := map[string]bool{}
		for _, f := range strings.Fields(l) {
			have[f] = true
		}
		all := true
		for _, f := range fields {
			all = all && have[f]
		}
		if all {
			return true
		}
	}
	return false
}

// putObject writes data into the file:// bucket at url, under a key listed
// beside the other hostile objects, and returns the key.
func putObject(t testing.TB, url string, n int, data []byte) string {
	t.Helper()
	key := fixtures.Key(fixtures.FileSpec{EventType: fixtures.HostileEventType, Seed: 21, Partition: 9, Offset: n})
	path := filepath.Join(strings.TrimPrefix(url, "file://"), key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

// BenchmarkHostileInputPeakHeap reads, with the shipped config's input
// settings (two objects at a time, batches of 100), decompression bombs and
// blocks full of records just under the record limit, and reports the peak
// live heap the input adds while a consumer drops what it is handed:
// go test ./plugin/brazecurrents -run '^$' -bench HostileInputPeakHeap -benchtime 1x
func BenchmarkHostileInputPeakHeap(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		url := "file://" + dir
		for i := range 12 {
			var data []byte
			switch i % 3 {
			case 0:
				data = hostile(b, func(w io.Writer) error { return fixtures.DeflateBomb(w, 1024) })
			case 1:
				data = hostile(b, func(w io.Writer) error { return fixtures.GiantRecords(w, "null", 16, 250<<10) })
			default:
				data = hostile(b, func(w io.Writer) error { return fixtures.GiantRecords(w, "deflate", 16, 250<<10) })
			}
			putObject(b, url, i, data)
		}
		sb := service.NewStreamBuilder()
		if err := sb.SetLoggerYAML("level: none"); err != nil {
			b.Fatal(err)
		}
		if err := sb.AddInputYAML("braze_currents:\n  url: " + url + "\n  max_parallel_objects: 2\n  batch_size: 100"); err != nil {
			b.Fatal(err)
		}
		heap := newPeakHeap()
		if err := sb.AddBatchConsumerFunc(func(context.Context, service.MessageBatch) error {
			heap.sample()
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		s, err := sb.Build()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(heap.peak)/(1<<20), "peak-heap-MB")
	}
}

// logged reports whether a line holds every one of subs.
func logged(lines []string, subs ...string) bool {
	for _, l := range lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return true
		}
	}
	return false
}
