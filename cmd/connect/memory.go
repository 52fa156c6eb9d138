package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
)

// The garbage collector's settings when the environment sets none (GOGC,
// GOMEMLIMIT win when set). Chosen from docs/benchmarks.md, "GC and memory
// settings": on the 1M-event backfill at 2 cores, GOGC=150 with a 90 MiB
// soft limit took 14% less CPU than Go's defaults and peaked at 130 MB,
// under the 150 MB the pipeline is held to; GOGC=200 alone went over it.
const (
	defaultGCPercent = 150
	// The soft limit follows the cores: the pipeline runs a thread per core,
	// each holding a batch in flight. Too low a limit for what is in flight
	// makes the collector run without pause.
	memoryLimitBase    = 76 << 20
	memoryLimitPerCore = 7 << 20
)

// applyMemoryDefaults sets the collector's defaults for the settings the
// environment leaves unset.
func applyMemoryDefaults(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimitBase + memoryLimitPerCore*int64(runtime.GOMAXPROCS(0)))
	}
}

// gogcWarning words a GOGC that is neither a number nor off, or "": Go's
// runtime ignores it without a word and collects at GOGC=100, and, since it
// is set, the binary's default of 150 does not apply either. (A GOMEMLIMIT
// it cannot read stops the runtime before main, with "fatal error: malformed
// GOMEMLIMIT": nothing of ours runs to say more.)
func gogcWarning(getenv func(string) string) string {
	v := getenv("GOGC")
	if v == "" || v == "off" {
		return ""
	}
	if _, err := strconv.ParseInt(v, 10, 32); err == nil { // as the runtime reads it
		return ""
	}
	return fmt.Sprintf("GOGC=%q is neither a number nor off: Go ignores it and collects at GOGC=100, "+
		"where the binary's default, when GOGC is unset, is %d", v, defaultGCPercent)
}
