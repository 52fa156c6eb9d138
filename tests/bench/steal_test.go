package main

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseSteal(t *testing.T) {
	steal, ok := parseSteal(strings.NewReader("cpu  256123 0 36841 130495 3043 0 1430 34369 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"))
	if !ok || steal != 343690*time.Millisecond {
		t.Errorf("steal %v (%v), want 343.69s", steal, ok)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "intr 1 2 3 4 5 6 7 8 9\n", "cpu 1 2 3 4 5 6 7 x 0 0\n"} {
		if _, ok := parseSteal(strings.NewReader(bad)); ok {
			t.Errorf("%q read as a steal time", bad)
		}
	}
	if _, ok := machineSteal(); !ok && runtime.GOOS == "linux" {
		t.Error("this Linux machine's steal time could not be read from /proc/stat")
	}
}

// A run during which the hypervisor took a tenth of the machine is named;
// one at 1% is not.
func TestStealWarning(t *testing.T) {
	wall := 10 * time.Second
	cpus := time.Duration(runtime.NumCPU())
	quiet := result{wall: wall, steal: wall * cpus / 100}
	busy := result{wall: wall, steal: wall * cpus / 10}
	if w := stealWarning([]result{quiet, quiet}); w != "" {
		t.Errorf("quiet runs warned of: %s", w)
	}
	w := stealWarning([]result{quiet, busy, quiet})
	if !strings.Contains(w, "1 of 3 runs") || !strings.Contains(w, "up to 10%") {
		t.Errorf("warning %q, want 1 of 3 runs, up to 10%%", w)
	}
}
