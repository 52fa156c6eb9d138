package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestMain lets the test binary act as the bench's rusage wrapper, as the
// bench binary does, and removes the connect binary the tests built.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == wrapArg {
		os.Exit(wrap(os.Args[2:]))
	}
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the connect binary the tests share: linking one takes seconds.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// connectBinary builds the release binary once, as the bench does without
// -binary, and returns its path.
func connectBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "currents-bench-test"); built.err != nil {
			return
		}
		root, err := repoRoot()
		if err != nil {
			built.err = err
			return
		}
		built.err = build(root, filepath.Join(built.dir, "connect"))
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "connect")
}

// TestBenchSmall runs the README's bench command on small backfills of both
// workloads, with the stages: the bench keeps working, both pipelines
// deliver the same calls (every event with a user) to the stand-in, and log
// no error: the events of no user at all are skipped, not failed.
func TestBenchSmall(t *testing.T) {
	const events = 2000
	dir := t.TempDir()
	out, err := run(options{workload: workloadBoth, events: events, perFile: 40, runs: 1, dir: dir, stages: true, sameCalls: true,
		binary: connectBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{workloadFifty, workloadSingle} {
		got := map[string]result{}
		for _, l := range out[name] {
			if len(l.runs) != 1 {
				t.Fatalf("workload %s: %s ran %d times, want once", name, l.name, len(l.runs))
			}
			got[l.name] = l.runs[0]
		}
		if len(got) != 3 {
			t.Fatalf("workload %s: lines %v, want ours, stock and decoder", name, out[name])
		}
		if got["decoder"].events != events {
			t.Errorf("workload %s: the decoder read %d events, want %d", name, got["decoder"].events, events)
		}
		ours, stock := got["ours"].delivered, got["stock"].delivered
		if ours.unique < events*95/100 || len(ours.calls) != ours.unique {
			t.Errorf("workload %s: ours delivered %+d calls (%d kept), want nearly all of %d", name, ours.unique, len(ours.calls), events)
		}
		if err := stock.sameAs(ours); err != nil {
			t.Errorf("workload %s: stock delivered other calls than ours: %v", name, err)
		}
		// The events of no user at all are skipped by the mapping, as anonymous
		// users are without include_anonymous: no error line in either pipeline
		// (the mapping processor logs every failure), nor in the decoder.
		// users.messages.email.Send always has a user: every event is sent.
		if got["ours"].errors != 0 || got["stock"].errors != 0 || got["decoder"].errors != 0 {
			t.Errorf("workload %s: error lines: ours %d, stock %d, decoder %d; want none",
				name, got["ours"].errors, got["stock"].errors, got["decoder"].errors)
		}
		if skipped := events - ours.unique; name == workloadSingle && skipped != 0 {
			t.Errorf("workload single: %d events not sent, want all", skipped)
		}
		for line, r := range got {
			if r.cpu <= 0 || r.maxRSSMiB <= 0 {
				t.Errorf("workload %s: %s: no CPU time or peak RSS measured: %+v", name, line, r)
			}
		}
	}
}

// TestBenchRunsAndEnv runs our line twice with extra environment on the
// single type: both runs are reported. Then the environment leaves out
// anonymous users: it reaches our pipeline, which sends fewer calls than
// stock, so the bench fails, naming the run.
func TestBenchRunsAndEnv(t *testing.T) {
	const events = 400
	dir := t.TempDir()
	o := options{workload: workloadSingle, events: events, runs: 2, dir: dir, only: "ours", env: []string{"GOGC=200"},
		binary: connectBinary(t)}
	out, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	if l := out[workloadSingle]; len(l) != 1 || l[0].name != "ours" || len(l[0].runs) != 2 {
		t.Fatalf("lines %+v, want ours run twice", l)
	}
	o.env = append(o.env, "BRAZE_INCLUDE_ANONYMOUS=false")
	o.runs = 1
	o.only = ""
	_, err = run(o)
	if err == nil || !strings.Contains(err.Error(), "stock (run 1) delivered other calls than ours (run 1)") {
		t.Fatalf("ours without anonymous users against stock with them: error %v, want stock's run named", err)
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{3}, spread{3, 3, 3}},
		{[]float64{5, 1, 3}, spread{3, 1, 5}},
		{[]float64{4, 1, 2, 8}, spread{3, 1, 8}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// TestBenchCustomHTTP runs the Custom HTTP workload small: every request is
// answered 200 (the bench fails otherwise), every event with a user reaches
// the stand-in once, the others (no user at all) are skipped, neither dead
// letters nor error lines, and the pipeline's CPU time and peak RSS are read
// while it runs.
func TestBenchCustomHTTP(t *testing.T) {
	const events = 1000
	dir := t.TempDir()
	out, err := run(options{workload: workloadHTTP, events: events, runs: 1, dir: dir, sameCalls: true, binary: connectBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	l := out[workloadHTTP]
	if len(l) != 1 || l[0].name != "ours" || len(l[0].runs) != 1 {
		t.Fatalf("lines %+v, want ours run once", l)
	}
	r := l[0].runs[0]
	dead, err := os.ReadFile(filepath.Join(dir, "dead-"+workloadHTTP+".jsonl"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	noUser := httpEventsWithoutUser(t, events)
	if noUser == 0 || noUser > events/20 {
		t.Fatalf("%d of the %d events have no user at all: the workload does not exercise the skip", noUser, events)
	}
	if r.delivered.unique != events-noUser || r.delivered.accepted != r.delivered.unique || r.events != r.delivered.unique || len(dead) != 0 {
		t.Errorf("%d events: %d calls accepted (%d messageIds), %d bytes of dead letters; want each of the %d with a user once, no dead letter",
			events, r.delivered.accepted, r.delivered.unique, len(dead), events-noUser)
	}
	if r.errors != 0 {
		t.Errorf("%d error lines in the pipeline's log, want none", r.errors)
	}
	if r.cpu <= 0 || r.maxRSSMiB <= 0 || r.wall <= 0 {
		t.Errorf("no CPU time, peak RSS or wall time measured: %+v", r)
	}
}

// httpEventsWithoutUser counts the events of the Custom HTTP workload of n
// events with neither user_id nor external_user_id.
func httpEventsWithoutUser(t *testing.T, n int) int {
	t.Helper()
	w, err := newWorkload(workloadHTTP, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := httpBodies(w)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, body := range bodies {
		var req struct {
			Events []struct {
				User map[string]any `json:"user"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatal(err)
		}
		for _, e := range req.Events {
			if id, ext := e.User["user_id"], e.User["external_user_id"]; (id == nil || id == "") && (ext == nil || ext == "") {
				count++
			}
		}
	}
	return count
}
