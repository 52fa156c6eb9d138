// Command bench measures the product against a stock pipeline, in one run on
// one machine: a backfill of Currents files of the 50 forwarded event types
// in a local bucket, delivered to the Segment stand-in on loopback.
//
//	go run ./tests/bench                 # 1,000,000 events
//	go run ./tests/bench -events 200000  # quicker
//	go run ./tests/bench -only ours -cpuprofile ours.prof   # and profile ours
//	go run ./tests/bench -stages         # and where each pipeline's CPU goes
//
// Lines: (a) our pipeline, config/currents_to_segment.yaml; (b) a stock
// pipeline built only from benthos core components (file input with the
// deprecated avro-ocf codec, the same Bloblang mapping, http_client batching
// to /v1/batch); (c) our decoder alone (braze_currents input into drop).
// Each runs the built binary as its own process: events/s is wall clock,
// CPU seconds and peak RSS come from the kernel's accounting of that process.
// Each line's logs go to <line>.log in the work directory; the table counts
// their error lines (one per event the mapping refuses).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const writeKey = "bench-write-key"

func main() {
	if len(os.Args) > 1 && os.Args[1] == wrapArg {
		os.Exit(wrap(os.Args[2:]))
	}
	events := flag.Int("events", 1_000_000, "events in the backfill")
	perFile := flag.Int("per-file", 2000, "events per Currents file")
	keep := flag.String("dir", "", "work directory (default: a temporary one, removed after)")
	only := flag.String("only", "", "run one line only: ours, stock or decoder")
	profile := flag.String("cpuprofile", "", "write a CPU profile of our pipeline here (20 s, via its debug endpoint; needs a run longer than that)")
	withStages := flag.Bool("stages", false, "also run each pipeline cut short after its input, then after each processor, into drop")
	flag.Parse()
	if _, err := run(*events, *perFile, *keep, *only, *profile, *withStages); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name      string
	events    int
	wall      time.Duration
	cpu       time.Duration
	maxRSSMiB float64
	errors    int // error lines in the pipeline's logs
}

// run measures the lines (and the stages when asked) and prints them; it
// returns the lines' results.
func run(events, perFile int, dir, only, profile string, withStages bool) ([]result, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "currents-bench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	binary := filepath.Join(dir, "connect")
	fmt.Println("building", binary)
	if out, err := exec.Command(filepath.Join(root, ".ci/build"), binary).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	bucket := filepath.Join(dir, "bucket")
	types := forwardedTypes()
	files := max(1, events/(perFile*len(types)))
	fmt.Printf("writing %d files of %d events for %d event types\n", files*len(types), perFile, len(types))
	// A kept work directory reuses its bucket only if it holds this backfill.
	stamp, shape := filepath.Join(dir, "bucket.shape"), fmt.Sprintf("%d files of %d events\n", files*len(types), perFile)
	if have, err := os.ReadFile(stamp); err != nil || string(have) != shape {
		if err := os.RemoveAll(bucket); err != nil {
			return nil, err
		}
		if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: types, FilesPerType: files,
			RecordsPerFile: perFile, Seed: 99, DiscardRecords: true}); err != nil {
			return nil, err
		}
		if err := os.WriteFile(stamp, []byte(shape), 0o644); err != nil {
			return nil, err
		}
	}
	total := files * len(types) * perFile

	// Only the messageIds are needed below; keeping a million calls would
	// take gigabytes on the machine being measured.
	srv, err := segmentapi.Start(writeKey, segmentapi.WithRecordIDsOnly())
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	stock := filepath.Join(dir, "stock.yaml")
	if err := os.WriteFile(stock, []byte(stockConfig(bucket, srv.URL())), 0o644); err != nil {
		return nil, err
	}
	decoder := filepath.Join(dir, "decoder.yaml")
	if err := os.WriteFile(decoder, []byte(decoderConfig(bucket)), 0o644); err != nil {
		return nil, err
	}
	env := []string{"CURRENTS_URL=file://" + bucket, "CURRENTS_WATCH=false", "CURRENTS_CHECKPOINT_IN_BUCKET=false",
		"BRAZE_INCLUDE_ANONYMOUS=true", "SEGMENT_WRITE_KEY=" + writeKey, "SEGMENT_ENDPOINT=" + srv.URL(),
		"DEAD_LETTER_PATH=" + filepath.Join(dir, "dead.jsonl"), "CONNECT_HTTP_ADDRESS=127.0.0.1:0"}

	configs := map[string]string{"ours": filepath.Join(root, "config/currents_to_segment.yaml"), "stock": stock}
	lines := []struct{ name, config string }{
		{"ours", configs["ours"]},
		{"stock", stock},
		{"decoder", decoder},
	}
	var results []result
	for _, l := range lines {
		if only != "" && only != l.name {
			continue
		}
		srv.Reset()
		profilePath := ""
		if l.name == "ours" {
			profilePath = profile
		}
		r, err := runProfiled(binary, root, l.config, filepath.Join(dir, l.name+".log"), env, profilePath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		r.name, r.events = l.name, total
		if l.name != "decoder" {
			if got := srv.UniqueMessageIDs(); got < total*3/4 {
				return nil, fmt.Errorf("%s: only %d of %d events reached the stand-in", l.name, got, total)
			}
			r.events = srv.UniqueMessageIDs()
		}
		results = append(results, r)
		fmt.Printf("  %-8s done in %v\n", l.name, r.wall.Round(time.Millisecond))
	}
	report(results)
	if withStages {
		return results, runStages(binary, root, dir, configs, env, total, results)
	}
	return results, nil
}

// runStages runs the stages and prints what each part adds to the CPU per
// event; the full lines, when they ran, are the last stage of each.
func runStages(binary, root, dir string, configs map[string]string, env []string, total int, full []result) error {
	fmt.Printf("\n%-24s %16s %16s %12s\n", "stage", "CPU-s/M events", "added", "peak RSS")
	previous := 0.0
	print := func(name string, r result) {
		cpu := r.cpu.Seconds() * 1e6 / float64(r.events)
		fmt.Printf("%-24s %16.1f %16.1f %8.1f MiB\n", name, cpu, cpu-previous, r.maxRSSMiB)
		previous = cpu
	}
	for i, s := range stages {
		if i > 0 && s.pipeline != stages[i-1].pipeline {
			printFull(stages[i-1].pipeline, full, total, print)
			previous = 0
		}
		r, err := runLine(binary, root, configs[s.pipeline], filepath.Join(dir, fmt.Sprintf("stage-%d.log", i)), env, s.args()...)
		if err != nil {
			return fmt.Errorf("stage %q: %w", s.name, err)
		}
		r.events = total
		print(s.name, r)
	}
	printFull(stages[len(stages)-1].pipeline, full, total, print)
	return nil
}

// printFull prints a full line as the last stage, per event read like the
// stages (the full lines count events sent).
func printFull(pipeline string, full []result, total int, print func(string, result)) {
	for _, r := range full {
		if r.name == pipeline {
			r.events = total
			print("  + output (full line)", r)
		}
	}
}

// wrapArg makes the bench re-run itself as a small wrapper that starts one
// pipeline and reports its rusage. Linux counts in a child's peak RSS the
// memory of the process that forked it, until the exec; forking from this
// process (it holds the stand-in's messageIds) would inflate the figure.
const wrapArg = "-wrap-pipeline"

// runLine runs one pipeline to its end through the wrapper, its logs into
// logPath, and reads the kernel's accounting of it.
func runLine(binary, dir, config, logPath string, env []string, extraArgs ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{wrapArg, binary, "-c", config, "--log.level", "warn"}, extraArgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	logs, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logs.Close()
	cmd.Stderr = logs
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%w (logs in %s)", err, logPath)
	}
	wall := time.Since(start)
	var usage struct{ CPUNanos, MaxRSSKiB int64 }
	if err := json.Unmarshal(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:], &usage); err != nil {
		return result{}, fmt.Errorf("wrapper output %q: %w", out, err)
	}
	errors, err := errorLines(logPath)
	if err != nil {
		return result{}, err
	}
	return result{wall: wall, cpu: time.Duration(usage.CPUNanos), maxRSSMiB: float64(usage.MaxRSSKiB) / 1024, errors: errors}, nil
}

// errorLines counts the lines Connect's logger wrote at level error.
func errorLines(logPath string) (int, error) {
	text, err := os.ReadFile(logPath)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "level=error") {
			n++
		}
	}
	return n, nil
}

// wrap runs args as a command and prints its CPU time and peak RSS as JSON.
func wrap(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		return 1
	}
	usage := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	_ = json.NewEncoder(os.Stdout).Encode(map[string]int64{"CPUNanos": cpu.Nanoseconds(), "MaxRSSKiB": usage.Maxrss})
	return 0
}

func report(results []result) {
	var stockRate float64
	for _, r := range results {
		if r.name == "stock" {
			stockRate = float64(r.events) / r.wall.Seconds()
		}
	}
	fmt.Printf("\n%-8s %10s %10s %14s %16s %12s %10s %12s\n", "pipeline", "events", "wall", "events/s", "CPU-s/M events", "peak RSS", "vs stock", "error lines")
	for _, r := range results {
		rate := float64(r.events) / r.wall.Seconds()
		ratio := "-"
		if stockRate > 0 {
			ratio = fmt.Sprintf("%.1fx", rate/stockRate)
		}
		fmt.Printf("%-8s %10d %10s %14.0f %16.1f %9.1f MiB %10s %12d\n", r.name, r.events, r.wall.Round(time.Millisecond),
			rate, r.cpu.Seconds()*1e6/float64(r.events), r.maxRSSMiB, ratio, r.errors)
	}
}

func forwardedTypes() []string {
	var types []string
	for t := range fixtures.SegmentEvents() {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// repoRoot finds the directory holding go.mod, where the shipped configs run.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
