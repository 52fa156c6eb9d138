package main

import (
	"fmt"
	"slices"
	"strings"
)

// lineRuns is every run of one line on one workload.
type lineRuns struct {
	name string
	runs []result
}

// spread is the median of some figures and their range.
type spread struct{ median, min, max float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{median: m, min: s[0], max: s[len(s)-1]}
}

// format prints the median, and the range when there are several figures.
func (s spread) format(verb string, runs int) string {
	if runs < 2 {
		return fmt.Sprintf(verb, s.median)
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.median, s.min, s.max)
}

func (l lineRuns) figure(f func(result) float64) spread {
	var xs []float64
	for _, r := range l.runs {
		xs = append(xs, f(r))
	}
	return spreadOf(xs)
}

func (l lineRuns) rate() spread { return l.figure(result.rate) }
func (l lineRuns) cpu() spread  { return l.figure(result.cpuPerMillion) }
func (l lineRuns) rss() spread  { return l.figure(func(r result) float64 { return r.maxRSSMiB }) }
func (l lineRuns) events() spread {
	return l.figure(func(r result) float64 { return float64(r.events) })
}
func (l lineRuns) errors() spread {
	return l.figure(func(r result) float64 { return float64(r.errors) })
}

// report prints one workload's table: per line the medians of its runs
// (and their ranges when there are several), then ours against stock.
func report(w workload, lines []lineRuns, env, set []string) {
	runs := 0
	for _, l := range lines {
		runs = max(runs, len(l.runs))
	}
	fmt.Printf("\n%s", w)
	if runs > 1 {
		fmt.Printf("; %d runs each, interleaved: median (range)", runs)
	}
	if len(env)+len(set) > 0 {
		fmt.Printf("; ours with %s", strings.Join(append(slices.Clone(env), set...), " "))
	}
	fmt.Printf("\n%-13s %10s %26s %20s %26s %12s\n", "pipeline", "events", "events/s", "CPU-s/M events", "peak RSS MiB", "error lines")
	byName := map[string]lineRuns{}
	for _, l := range lines {
		byName[l.name] = l
		fmt.Printf("%-13s %10s %26s %20s %26s %12s\n", l.name, l.events().format("%.0f", 1), l.rate().format("%.0f", runs),
			l.cpu().format("%.1f", runs), l.rss().format("%.1f", runs), l.errors().format("%.0f", 1))
	}
	ours, okOurs := byName["ours"]
	stock, okStock := byName["stock"]
	if okOurs && okStock {
		// Above 1, ours is better: more events/s, less CPU, less memory.
		gain := func(better, worse spread) string { return fmt.Sprintf("%.2fx", better.median/worse.median) }
		fmt.Printf("%-13s %10s %26s %20s %26s\n", "gain vs stock", "", gain(ours.rate(), stock.rate()),
			gain(stock.cpu(), ours.cpu()), gain(stock.rss(), ours.rss()))
		fmt.Println("(gain: ours ÷ stock for events/s, stock ÷ ours for CPU and peak RSS, of the medians)")
	}
}
