package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// Unset, GOGC and GOMEMLIMIT get the shipped defaults, the limit following
// the cores; set, the runtime's own reading of them stays.
func TestMemoryDefaults(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })

	applyMemoryDefaults(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, defaultGCPercent)
	}
	want := int64(memoryLimitBase + memoryLimitPerCore*runtime.GOMAXPROCS(0))
	if got := debug.SetMemoryLimit(math.MaxInt64); got != want {
		t.Errorf("GOMEMLIMIT unset: limit %d, want %d", got, want)
	}

	applyMemoryDefaults(func(string) string { return "set" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent changed to %d", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: limit changed to %d", got)
	}
}

// A GOGC the runtime cannot read (it collects at 100 instead, and the
// binary's 150 does not apply) is warned of, naming it; unset, off and
// numbers are not.
func TestWarnMalformedGOGC(t *testing.T) {
	for v, want := range map[string]string{
		"abc":  `GOGC="abc" is neither a number nor off: Go ignores it and collects at GOGC=100, where the binary's default, when GOGC is unset, is 150`,
		"150%": `GOGC="150%" is neither a number nor off: Go ignores it and collects at GOGC=100, where the binary's default, when GOGC is unset, is 150`,
		"":     "", "off": "", "200": "", "-1": "",
	} {
		if got := gogcWarning(func(string) string { return v }); got != want {
			t.Errorf("GOGC=%q: %q, want %q", v, got, want)
		}
	}
}
