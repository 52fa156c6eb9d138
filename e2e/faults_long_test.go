//go:build long

// The long fault test takes minutes, so it is built only with the long tag
// (go test -tags long ./e2e -run FaultLongBackfill) instead of being
// skipped in every other run.
package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestFaultLongBackfill sends a 1,000,000-event backfill (50 types) from a
// file:// bucket through the shipped pipeline into the stand-in and checks
// that everything was delivered within a bounded peak memory.
func TestFaultLongBackfill(t *testing.T) {
	const filesPerType, recordsPerFile, seed = 20, 1000, 77
	types := fixtures.SegmentEventTypes()
	total := len(types) * filesPerType * recordsPerFile
	tree := filepath.Join(t.TempDir(), "tree")
	start := time.Now()
	if _, err := fixtures.WriteTree(tree, fixtures.TreeOptions{EventTypes: types, FilesPerType: filesPerType,
		RecordsPerFile: recordsPerFile, Seed: seed, DiscardRecords: true}); err != nil {
		t.Fatal(err)
	}
	// Events without any user are skipped: count them type by type (the
	// files of a type do not depend on the other types in the tree).
	unsendable := 0
	for _, et := range types {
		if !nullableUser(et) {
			continue
		}
		written, err := fixtures.WriteTree(filepath.Join(t.TempDir(), "count"), fixtures.TreeOptions{
			EventTypes: []string{et}, FilesPerType: filesPerType, RecordsPerFile: recordsPerFile, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range written {
			for _, r := range w.Records {
				if !sendable(r) {
					unsendable++
				}
			}
		}
	}
	t.Logf("%d events in %d objects written in %v; %d without a user", total, len(types)*filesPerType,
		time.Since(start).Round(time.Millisecond), unsendable)

	// The stand-in keeps every call it accepts; a million would weigh
	// gigabytes in this process, so ids are counted here and the stand-in's
	// records are dropped after each request.
	srv := segmentapi.StartT(t, e2eWriteKey)
	var mu sync.Mutex
	seen := make(map[string]int32, total)
	accepted, duplicates, requests := 0, 0, 0
	srv.OnRequest(func(_ *http.Request, calls []segmentapi.Call) {
		mu.Lock()
		requests++
		for _, c := range calls {
			id, _ := c["messageId"].(string)
			seen[id]++
			accepted++
			if seen[id] > 1 {
				duplicates++
			}
		}
		mu.Unlock()
		srv.Reset()
	})
	deadPath := filepath.Join(t.TempDir(), "dead.jsonl")
	env := pipelineEnv("file://"+tree, srv, deadPath, "BRAZE_INCLUDE_ANONYMOUS=true")
	start = time.Now()
	p := startConnect(t, repoRoot, env, nil)
	// The process's own high-water mark of resident memory. Its rusage
	// Maxrss would count this test process's memory too: Linux records the
	// forking process's mm at exec, and this process holds a million ids.
	hwm := make(chan int64, 1)
	go func() { hwm <- watchVmHWM(p.cmd.Process.Pid) }()
	p.wait(15 * time.Minute)
	took := time.Since(start)
	peakKB := <-hwm

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total-unsendable {
		t.Fatalf("%d unique ids reached Segment, want %d", len(seen), total-unsendable)
	}
	// The mapping skips them: no dead letter.
	if dead := deadletter.Read(t, deadPath, false); len(dead) != 0 {
		t.Errorf("%d dead letters, want none: %+v", len(dead), dead[0])
	}
	if n := p.count("Object done"); n != len(types)*filesPerType {
		t.Fatalf("%d objects done, want %d", n, len(types)*filesPerType)
	}
	t.Logf("%d events delivered in %v (%.0f events/s), %d requests, %d duplicates; peak RSS %.1f MB",
		len(seen), took.Round(time.Millisecond), float64(total)/took.Seconds(), requests, duplicates, float64(peakKB)/1024)
	if peakKB > 150*1024 {
		t.Fatalf("peak RSS %.1f MB, over 150 MB", float64(peakKB)/1024)
	}
}

// nullableUser reports whether events of et may have no user_id.
func nullableUser(et string) bool {
	for _, f := range fixtures.Fields(et) {
		if f.Name == "user_id" && f.Nullable {
			return true
		}
	}
	return false
}

// watchVmHWM samples VmHWM (peak resident set, kB) of pid until it exits
// and returns the last value read: a high-water mark never decreases.
func watchVmHWM(pid int) int64 {
	var peak int64
	path := fmt.Sprintf("/proc/%d/status", pid)
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			return peak
		}
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64); err == nil && kb > peak {
					peak = kb
				}
			}
		}
		if strings.Contains(string(data), "State:\tZ") {
			return peak
		}
		time.Sleep(100 * time.Millisecond) // sampling a high-water mark, not timing anything
	}
}
