package main

import (
	"fmt"
	"path/filepath"
)

// stage is one pipeline cut short: its input and some of its processors
// (the others replaced by noop), into drop, so that the CPU each part adds
// can be read off the difference between successive stages. The cuts are
// made with the CLI's --set on the same configs, so they run exactly what
// the full lines run.
type stage struct {
	name     string
	pipeline string // "ours" or "stock": which config
	noop     []int  // indexes of pipeline.processors replaced by noop
}

var oursStages = []stage{
	{"ours: input", "ours", []int{0, 1}},
	{"  + mapping", "ours", []int{1}},
	{"  + counters", "ours", nil},
}

// The stock pipelines' cuts follow their processors (configs.go).
var (
	stockFiftyStages = []stage{
		{"stock: input", "stock", []int{0, 1}},
		{"  + unwrap", "stock", []int{1}},
		{"  + mapping", "stock", nil},
	}
	stockSingleStages = []stage{
		{"stock: input", "stock", []int{0}},
		{"  + mapping", "stock", nil},
	}
)

// args cuts the pipeline. Stages log nothing: events the mapping refuses
// would log one error each, as in the full lines.
func (s stage) args() []string {
	args := []string{"--set", "output={drop: {}}", "--log.level", "none"}
	for _, i := range s.noop {
		args = append(args, "--set", fmt.Sprintf("pipeline.processors.%d={noop: {}}", i))
	}
	return args
}

// stagesOf lists the workload's stages of the lines being run (-only
// leaves).
func stagesOf(w workload, lines []line) []stage {
	var out []stage
	for _, s := range append(append([]stage{}, oursStages...), w.stockStages...) {
		for _, l := range lines {
			if l.name == s.pipeline {
				out = append(out, s)
			}
		}
	}
	return out
}

// runStages runs each stage once, as the run-th run, and appends the
// results to got (one slice per stage).
func (b *bench) runStages(w workload, lines []line, stages []stage, run int, got [][]result) error {
	configs := map[string]line{}
	for _, l := range lines {
		configs[l.name] = l
	}
	for i, s := range stages {
		l := configs[s.pipeline]
		r, err := runLine(b.binary, b.root, l.config, filepath.Join(b.dir, fmt.Sprintf("stage-%s-%d-%d.log", w.name, i, run)),
			l.env, append(append([]string{}, l.args...), s.args()...)...)
		if err != nil {
			return fmt.Errorf("stage %q: %w", s.name, err)
		}
		r.events = w.events()
		got[i] = append(got[i], r)
	}
	return nil
}

// reportStages prints what each part costs per event read: the medians,
// and with several runs their ranges. "Added" is the median of each run's
// difference from the stage before it, in the same run; the full lines'
// runs (per event read like the stages) are the last stage of each
// pipeline.
func reportStages(w workload, stages []stage, got [][]result, full []lineRuns) {
	fulls := map[string][]result{}
	for _, l := range full {
		for _, r := range l.runs {
			r.events = w.events()
			fulls[l.name] = append(fulls[l.name], r)
		}
	}
	// A stage's share of its full line, run by run: the VM's speed moves
	// every stage's CPU-s/M together (by a fifth within minutes), its share
	// much less.
	fmt.Printf("\n%-24s %22s %22s %16s %22s\n", "stage", "CPU-s/M events", "added", "% of full line", "peak RSS MiB")
	var previous []result
	print := func(name string, rs, line []result) {
		var cpu, added, share, rss []float64
		for i, r := range rs {
			cpu = append(cpu, r.cpuPerMillion())
			rss = append(rss, r.maxRSSMiB)
			add := r.cpuPerMillion()
			if i < len(previous) {
				add -= previous[i].cpuPerMillion()
			}
			added = append(added, add)
			if i < len(line) && line[i].cpuPerMillion() > 0 {
				share = append(share, 100*add/line[i].cpuPerMillion())
			}
		}
		fmt.Printf("%-24s %22s %22s %16s %22s\n", name, spreadOf(cpu).format("%.1f", len(rs)),
			spreadOf(added).format("%.1f", len(rs)), spreadOf(share).format("%.0f", len(share)), spreadOf(rss).format("%.1f", len(rs)))
		previous = rs
	}
	for i, s := range stages {
		if i > 0 && s.pipeline != stages[i-1].pipeline {
			print("  + output (full line)", fulls[stages[i-1].pipeline], fulls[stages[i-1].pipeline])
			previous = nil
		}
		print(s.name, got[i], fulls[s.pipeline])
	}
	if len(stages) > 0 {
		last := fulls[stages[len(stages)-1].pipeline]
		print("  + output (full line)", last, last)
	}
}
