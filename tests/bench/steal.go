package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's unit of /proc/stat (USER_HZ), 100 a second on
// every Linux Go runs on.
const clockTick = 10 * time.Millisecond

// maxStealShare is the share of the machine a hypervisor may take during a
// run before the bench says its figures are not comparable: on a VM whose
// host is busy, a line's CPU-s per event rose by a fifth and its stages
// spread by twice the 5 CPU-s/M they are read against (2026-12-03).
const maxStealShare = 0.05

// machineSteal is the CPU time the hypervisor has taken from this machine
// since boot, all CPUs together (/proc/stat's steal); false where the kernel
// does not say.
func machineSteal() (time.Duration, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return parseSteal(f)
}

// parseSteal reads the steal time from /proc/stat's first line: "cpu" then
// user, nice, system, idle, iowait, irq, softirq and steal, in clock ticks.
func parseSteal(r io.Reader) (time.Duration, bool) {
	line, err := bufio.NewReader(r).ReadString('\n')
	fields := strings.Fields(line)
	if (err != nil && err != io.EOF) || len(fields) < 9 || fields[0] != "cpu" {
		return 0, false
	}
	ticks, err := strconv.ParseInt(fields[8], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ticks) * clockTick, true
}

// stealShare is the share of the machine's CPU time the hypervisor took
// during a run of the given wall time.
func stealShare(steal, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return steal.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
}

// stealWarning says how many of the runs were measured while the
// hypervisor took more than maxStealShare of the machine; "" when none was.
func stealWarning(runs []result) string {
	n, worst := 0, 0.0
	for _, r := range runs {
		if s := stealShare(r.steal, r.wall); s > maxStealShare {
			n++
			worst = max(worst, s)
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("warning: %d of %d runs lost more than %.0f%% of the machine to its hypervisor (steal, up to %.0f%%): their figures are not comparable with a quiet machine's",
		n, len(runs), 100*maxStealShare, 100*worst)
}
