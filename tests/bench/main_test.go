package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary act as the bench's rusage wrapper, as the
// bench binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == wrapArg {
		os.Exit(wrap(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestBenchSmall runs the README's bench command on a small backfill, with
// the stages: the bench keeps working, both pipelines deliver the same
// events (every event with a user) to the stand-in, and log each event they
// refuse once.
func TestBenchSmall(t *testing.T) {
	const events, perFile = 2000, 40
	results, err := run(events, perFile, t.TempDir(), "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]result{}
	for _, r := range results {
		got[r.name] = r
	}
	if len(got) != 3 {
		t.Fatalf("lines %v, want ours, stock and decoder", results)
	}
	if got["decoder"].events != events {
		t.Errorf("the decoder read %d events, want %d", got["decoder"].events, events)
	}
	if ours, stock := got["ours"].events, got["stock"].events; ours != stock || ours < events*95/100 {
		t.Errorf("ours delivered %d events and stock %d, want the same, nearly all of %d", ours, stock, events)
	}
	// Each event the mapping refuses (no user at all) is one error line, in
	// both pipelines; the decoder logs none.
	if refused := events - got["ours"].events; got["ours"].errors != refused || got["stock"].errors != refused || got["decoder"].errors != 0 {
		t.Errorf("error lines: ours %d, stock %d, decoder %d; want %d, %d and 0", got["ours"].errors, got["stock"].errors, got["decoder"].errors, refused, refused)
	}
	for name, r := range got {
		if r.cpu <= 0 || r.maxRSSMiB <= 0 {
			t.Errorf("%s: no CPU time or peak RSS measured: %+v", name, r)
		}
	}
}
