// Command bench measures the product against a stock pipeline, in one run on
// one machine: a backfill of Currents files in a local bucket, delivered to
// the Segment stand-in on loopback. Two workloads: the 50 forwarded event
// types (1,000,000 events by default), and one type alone,
// users.messages.email.Send (200,000 events in 4 objects).
//
//	go run ./tests/bench                    # the 50 types, 1,000,000 events
//	go run ./tests/bench -workload both     # and the single type
//	go run ./tests/bench -events 200000     # quicker
//	go run ./tests/bench -runs 3            # each line 3 times, interleaved: medians and ranges
//	go run ./tests/bench -only ours -env GOGC=200 -env GOMEMLIMIT=100MiB   # ours with GC settings
//	go run ./tests/bench -only ours -cpuprofile ours.prof   # and profile ours
//	go run ./tests/bench -stages            # and where each pipeline's CPU goes
//	go run ./tests/bench -workload http     # our Custom HTTP pipeline, 200,000 events
//
// Lines: (a) our pipeline, config/currents_to_segment.yaml; (b) a stock
// pipeline built only from benthos core components (file input with the
// deprecated avro-ocf codec, for the 50 types the same Bloblang mapping, for
// the single type a small hand-written one, http_client batching to
// /v1/batch); (c) our decoder alone (braze_currents input into drop).
// Each runs the built binary as its own process: events/s is wall clock,
// CPU seconds and peak RSS come from the kernel's accounting of that process.
// Each line's logs go to <line>-<workload>.log in the work directory; the
// table counts their error lines (one per event the mapping refuses). The
// bench fails when ours and stock did not deliver the same number of calls.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const writeKey = "bench-write-key"

// options are the bench's flags.
type options struct {
	workload  string
	events    int // 0: each workload's default
	perFile   int
	runs      int
	dir       string
	binary    string
	only      string
	env, set  []string // our line's extra environment and --set arguments
	profile   string
	stages    bool
	sameCalls bool
	latency   time.Duration // how long the stand-in takes to answer each request
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == wrapArg {
		os.Exit(wrap(os.Args[2:]))
	}
	var o options
	var env, set listFlag
	flag.StringVar(&o.workload, "workload", workloadFifty, "50 (the 50 forwarded types), single (users.messages.email.Send in 4 objects), both, or http (the 50 types over Custom HTTP, our line only)")
	flag.IntVar(&o.events, "events", 0, "events in each backfill (default: 1,000,000 for 50, 200,000 for single and http)")
	flag.IntVar(&o.perFile, "per-file", 2000, "events per Currents file of the 50-type workload")
	flag.IntVar(&o.runs, "runs", 1, "runs of each line, interleaved; the table gives medians and ranges")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a temporary one, removed after)")
	flag.StringVar(&o.binary, "binary", "", "run this connect binary instead of building one")
	flag.StringVar(&o.only, "only", "", "run one line only: ours, stock or decoder")
	flag.Var(&env, "env", "NAME=VALUE added to our line's environment (repeatable), e.g. -env GOGC=200")
	flag.Var(&set, "set", "path=value set in our line's config, as connect's --set (repeatable), e.g. -set pipeline.threads=4")
	flag.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of our pipeline's first run here (20 s, via its debug endpoint; needs a run longer than that)")
	flag.BoolVar(&o.stages, "stages", false, "also run each pipeline cut short after its input, then after each processor, into drop (as many times as -runs, interleaved)")
	flag.DurationVar(&o.latency, "latency", 0, "the stand-in answers each request after this long, as a distant Segment would (e.g. 50ms)")
	flag.BoolVar(&o.sameCalls, "same-calls", false, "keep every call in the stand-in and check that ours and stock sent the same calls (memory: ~1 KB a call)")
	flag.Parse()
	o.env, o.set = env, set
	if _, err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is one run of the bench: the binary, where it runs, the stand-in.
type bench struct {
	opts   options
	root   string // the repository, where the pipelines run
	dir    string // the work directory
	binary string
	srv    *segmentapi.Server
}

// line is one pipeline as the bench runs it.
type line struct {
	name     string
	config   string
	env      []string
	args     []string // extra CLI arguments
	delivers bool     // into the stand-in (else into drop)
}

// run measures the workloads' lines (and stages when asked) and prints a
// table for each; it returns each workload's lines' runs.
func run(o options) (map[string][]lineRuns, error) {
	for _, kv := range o.env {
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("-env %q: want NAME=VALUE", kv)
		}
	}
	ws, err := workloads(o.workload, o.events, o.perFile)
	if err != nil {
		return nil, err
	}
	b := &bench{opts: o, dir: o.dir, binary: o.binary}
	if b.dir == "" {
		tmp, err := os.MkdirTemp("", "currents-bench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		b.dir = tmp
	}
	if b.root, err = repoRoot(); err != nil {
		return nil, err
	}
	if b.binary == "" {
		b.binary = filepath.Join(b.dir, "connect")
		fmt.Println("building", b.binary)
		if err := build(b.root, b.binary); err != nil {
			return nil, err
		}
	}
	// Unless calls are compared, only the messageIds are kept: a million
	// calls would take gigabytes on the machine being measured.
	var srvOpts []segmentapi.Option
	if !o.sameCalls {
		srvOpts = append(srvOpts, segmentapi.WithRecordIDsOnly())
	}
	if o.latency > 0 {
		srvOpts = append(srvOpts, segmentapi.WithLatency(o.latency))
	}
	if b.srv, err = segmentapi.Start(writeKey, srvOpts...); err != nil {
		return nil, err
	}
	defer b.srv.Close()
	out := map[string][]lineRuns{}
	var failed []error
	for _, w := range ws {
		runs, err := b.runWorkload(w)
		if runs != nil {
			out[w.name] = runs
		}
		if err != nil {
			failed = append(failed, fmt.Errorf("workload %s: %w", w.name, err))
		}
	}
	return out, errors.Join(failed...)
}

// runWorkload runs each line opts.runs times, interleaved (with the stages
// when asked, so that a stage and its full line are measured side by side),
// prints the table, and checks that ours and stock delivered the same.
func (b *bench) runWorkload(w workload) ([]lineRuns, error) {
	if w.name == workloadHTTP {
		return b.runHTTPWorkload(w)
	}
	bucket, err := w.writeBucket(b.dir)
	if err != nil {
		return nil, err
	}
	lines, err := b.lines(w, bucket)
	if err != nil {
		return nil, err
	}
	results := make([]lineRuns, len(lines))
	var stages []stage
	if b.opts.stages {
		stages = stagesOf(w, lines)
	}
	staged := make([][]result, len(stages))
	for run := range max(1, b.opts.runs) {
		for i, l := range lines {
			profile := ""
			if l.name == "ours" && run == 0 {
				profile = b.profilePath(w)
			}
			r, err := b.runOnce(w, l, profile)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.name, err)
			}
			results[i] = lineRuns{name: l.name, runs: append(results[i].runs, r)}
			fmt.Printf("  %-8s done in %v, steal %.1f%%", l.name, r.wall.Round(time.Millisecond), 100*stealShare(r.steal, r.wall))
			if n := r.delivered.requests; n > 0 {
				fmt.Printf(", %d requests, %.0f calls each", n, float64(r.delivered.accepted)/float64(n))
			}
			fmt.Println()
		}
		if err := b.runStages(w, lines, stages, run, staged); err != nil {
			return nil, err
		}
	}
	report(w, results, b.opts.env, b.opts.set)
	if len(stages) > 0 {
		reportStages(w, stages, staged, results)
	}
	var all []result
	for _, l := range results {
		all = append(all, l.runs...)
	}
	for _, rs := range staged {
		all = append(all, rs...)
	}
	if warning := stealWarning(all); warning != "" {
		fmt.Println(warning)
	}
	return results, sameDeliveries(results)
}

// lines writes the workload's stock and decoder configs and returns the
// lines to run (those -only leaves).
func (b *bench) lines(w workload, bucket string) ([]line, error) {
	stock := filepath.Join(b.dir, "stock-"+w.name+".yaml")
	if err := os.WriteFile(stock, []byte(stockConfig(bucket, b.srv.URL(), w.stock)), 0o644); err != nil {
		return nil, err
	}
	decoder := filepath.Join(b.dir, "decoder-"+w.name+".yaml")
	if err := os.WriteFile(decoder, []byte(decoderConfig(bucket)), 0o644); err != nil {
		return nil, err
	}
	env := append(b.deliveryEnv(w), "CURRENTS_URL=file://"+bucket, "CURRENTS_WATCH=false", "CURRENTS_CHECKPOINT_IN_BUCKET=false",
		"CONNECT_HTTP_ADDRESS=127.0.0.1:0")
	var args []string
	for _, s := range b.opts.set {
		args = append(args, "--set", s)
	}
	all := []line{
		{name: "ours", config: filepath.Join(b.root, "config/currents_to_segment.yaml"),
			env: append(append([]string{}, env...), b.opts.env...), args: args, delivers: true},
		{name: "stock", config: stock, delivers: true},
		{name: "decoder", config: decoder},
	}
	var out []line
	for _, l := range all {
		if b.opts.only == "" || b.opts.only == l.name {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-only %q: want ours, stock or decoder", b.opts.only)
	}
	return out, nil
}

// deliveryEnv is what our pipelines deliver by on w: every event with a
// user, to the stand-in, the dead letters into the work directory.
func (b *bench) deliveryEnv(w workload) []string {
	return []string{"BRAZE_INCLUDE_ANONYMOUS=true", "SEGMENT_WRITE_KEY=" + writeKey, "SEGMENT_ENDPOINT=" + b.srv.URL(),
		"DEAD_LETTER_PATH=" + filepath.Join(b.dir, "dead-"+w.name+".jsonl")}
}

// runOnce runs one line once, into a stand-in emptied first.
func (b *bench) runOnce(w workload, l line, profile string) (result, error) {
	b.srv.Reset()
	r, err := runProfiled(b.binary, b.root, l.config, filepath.Join(b.dir, l.name+"-"+w.name+".log"), l.env, profile, l.args...)
	if err != nil {
		return r, err
	}
	r.events = w.events()
	if !l.delivers {
		return r, nil
	}
	if r.delivered, err = delivered(b.srv, b.opts.sameCalls); err != nil {
		return r, err
	}
	if r.delivered.unique < w.events()*3/4 {
		return r, fmt.Errorf("only %d of %d events reached the stand-in", r.delivered.unique, w.events())
	}
	r.events = r.delivered.unique
	return r, nil
}

// profilePath is where ours' profile goes for w: -cpuprofile's path, with
// the workload's name added when the bench runs several.
func (b *bench) profilePath(w workload) string {
	if b.opts.profile == "" || b.opts.workload != workloadBoth {
		return b.opts.profile
	}
	ext := filepath.Ext(b.opts.profile)
	return strings.TrimSuffix(b.opts.profile, ext) + "-" + w.name + ext
}

// sameDeliveries checks that every run of ours and of stock delivered the
// same calls to the stand-in as ours' first run: the same number, and the
// same calls when they were kept.
func sameDeliveries(lines []lineRuns) error {
	var want *result
	first := ""
	for _, l := range lines {
		for i := range l.runs {
			if l.name != "ours" && l.name != "stock" {
				continue
			}
			if want == nil {
				want, first = &l.runs[i], l.name
				continue
			}
			if err := l.runs[i].delivered.sameAs(want.delivered); err != nil {
				return fmt.Errorf("%s (run %d) delivered other calls than %s (run 1): %w", l.name, i+1, first, err)
			}
		}
	}
	if want != nil {
		kept := ""
		if want.delivered.calls != nil {
			kept = ", the same calls"
		}
		fmt.Printf("stand-in: every run delivered %d calls (%d messageIds)%s\n", want.delivered.accepted, want.delivered.unique, kept)
	}
	return nil
}

// build builds the release binary, as CI does, at path.
func build(root, path string) error {
	if out, err := exec.Command(filepath.Join(root, ".ci/build"), path).CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	return nil
}
