//go:build long

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestHostileBucketLongMemory runs the shipped pipeline (two objects at a
// time, batches of 100) over a bucket where decompression bombs, lying
// snappy blocks and giant records sit beside good objects, and checks that
// every good event reached Segment, every hostile object was reported by
// key, and the process's peak resident memory stayed under 200 MB:
// go test -tags long ./e2e -run HostileBucketLongMemory
func TestHostileBucketLongMemory(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	written, err := fixtures.WriteTree(tree, fixtures.TreeOptions{FilesPerType: 6, RecordsPerFile: 500, Seed: 88,
		EventTypes: []string{fixtures.HostileEventType, "users.messages.email.Click"}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := expectedIDs(written)
	type hostile struct {
		name  string
		write func(*os.File) error
		fate  string // the log line naming its key
	}
	const corrupt, done = "Skipping corrupt object", "Object done"
	var objects []hostile
	add := func(n int, name, fate string, write func(*os.File) error) {
		for range n {
			objects = append(objects, hostile{name, write, fate})
		}
	}
	add(4, "deflate bomb, 1 GiB", corrupt, func(f *os.File) error { return fixtures.DeflateBomb(f, 1024) })
	add(2, "zstd bomb, 1 GiB", corrupt, func(f *os.File) error { return fixtures.ZstdBomb(f, 1024) })
	add(2, "snappy claiming 1 GiB", corrupt, func(f *os.File) error { return fixtures.SnappyLiar(f, 1<<30, 1<<20) })
	add(2, "snappy claiming 4 MiB", corrupt, func(f *os.File) error { return fixtures.SnappyLiar(f, 4<<20, 200<<10) })
	add(2, "50 MB record, null codec", corrupt, func(f *os.File) error { return fixtures.GiantRecords(f, "null", 1, 50<<20) })
	add(2, "50 MB record, deflate", corrupt, func(f *os.File) error { return fixtures.GiantRecords(f, "deflate", 1, 50<<20) })
	// Full blocks of records just under the record limit: read, mapped, too
	// large for Segment, so dead letters.
	add(2, "16 records of 250 KiB, null codec", done, func(f *os.File) error { return fixtures.GiantRecords(f, "null", 16, 250<<10) })
	add(4, "16 records of 250 KiB, deflate", done, func(f *os.File) error { return fixtures.GiantRecords(f, "deflate", 16, 250<<10) })
	keys := make([]string, len(objects))
	for i, o := range objects {
		// Listed side by side, so that hostile objects are read in parallel.
		keys[i] = fixtures.Key(fixtures.FileSpec{EventType: fixtures.HostileEventType, Seed: 88, Partition: 9, Offset: i})
		path := filepath.Join(tree, keys[i])
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.write(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}

	srv := segmentapi.StartT(t, e2eWriteKey)
	env := pipelineEnv("file://"+tree, srv, filepath.Join(t.TempDir(), "dead.jsonl"), "BRAZE_INCLUDE_ANONYMOUS=true")
	start := time.Now()
	p := startConnect(t, repoRoot, env, nil)
	hwm := make(chan int64, 1)
	go func() { hwm <- watchVmHWM(p.cmd.Process.Pid) }()
	p.wait(10 * time.Minute)
	peakKB := <-hwm
	t.Logf("%d good objects and %d hostile ones in %v; peak RSS %.1f MB", len(written), len(objects),
		time.Since(start).Round(time.Millisecond), float64(peakKB)/1024)

	checkDelivered(t, srv, want)
	for i, o := range objects {
		if p.count(o.fate, keys[i]) != 1 {
			t.Errorf("%s: no %q line for %s:\n%s", o.name, o.fate, keys[i], grepLines(p.logs(), keys[i]))
		}
	}
	if peakKB > 200*1024 {
		t.Fatalf("peak RSS %.1f MB, over 200 MB", float64(peakKB)/1024)
	}
}
