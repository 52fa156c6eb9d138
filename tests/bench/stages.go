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

// runStages runs the workload's stages and prints what each part costs per
// event read; the full lines, when they ran, are the last stage of each
// (their first run, per event read like the stages).
func (b *bench) runStages(w workload, lines []line, full []lineRuns) error {
	configs := map[string]line{}
	for _, l := range lines {
		configs[l.name] = l
	}
	fmt.Printf("\n%-24s %16s %16s %12s\n", "stage", "CPU-s/M events", "added", "peak RSS")
	previous := 0.0
	print := func(name string, r result) {
		cpu := r.cpuPerMillion()
		fmt.Printf("%-24s %16.1f %16.1f %8.1f MiB\n", name, cpu, cpu-previous, r.maxRSSMiB)
		previous = cpu
	}
	printFull := func(pipeline string) {
		for _, l := range full {
			if l.name == pipeline && len(l.runs) > 0 {
				r := l.runs[0]
				r.events = w.events()
				print("  + output (full line)", r)
			}
		}
		previous = 0
	}
	all := append(append([]stage{}, oursStages...), w.stockStages...)
	for i, s := range all {
		if i > 0 && s.pipeline != all[i-1].pipeline {
			printFull(all[i-1].pipeline)
		}
		l := configs[s.pipeline]
		r, err := runLine(b.binary, b.root, l.config, filepath.Join(b.dir, fmt.Sprintf("stage-%s-%d.log", w.name, i)),
			l.env, append(append([]string{}, l.args...), s.args()...)...)
		if err != nil {
			return fmt.Errorf("stage %q: %w", s.name, err)
		}
		r.events = w.events()
		print(s.name, r)
	}
	printFull(all[len(all)-1].pipeline)
	return nil
}
