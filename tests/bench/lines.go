package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// result is one run of one pipeline.
type result struct {
	events    int // events read (decoder, stages) or delivered (ours, stock)
	wall      time.Duration
	cpu       time.Duration
	maxRSSMiB float64
	errors    int           // error lines in the pipeline's logs
	delivered delivery      // what the stand-in received; zero for lines into drop
	steal     time.Duration // CPU time the hypervisor took from the machine meanwhile, all CPUs
}

func (r result) rate() float64          { return float64(r.events) / r.wall.Seconds() }
func (r result) cpuPerMillion() float64 { return r.cpu.Seconds() * 1e6 / float64(r.events) }

// wrapArg makes the bench re-run itself as a small wrapper that starts one
// pipeline and reports its rusage. Linux counts in a child's peak RSS the
// memory of the process that forked it, until the exec; forking from this
// process (it holds the stand-in's messageIds) would inflate the figure.
const wrapArg = "-wrap-pipeline"

// runLine runs one pipeline to its end through the wrapper, its logs into
// logPath, and reads the kernel's accounting of it. env is added to this
// process's environment, later entries winning.
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
	stealBefore, _ := machineSteal()
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("%w (logs in %s)", err, logPath)
	}
	wall := time.Since(start)
	stealAfter, _ := machineSteal()
	var usage struct{ CPUNanos, MaxRSSKiB int64 }
	if err := json.Unmarshal(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:], &usage); err != nil {
		return result{}, fmt.Errorf("wrapper output %q: %w", out, err)
	}
	errors, err := errorLines(logPath)
	if err != nil {
		return result{}, err
	}
	return result{wall: wall, cpu: time.Duration(usage.CPUNanos), maxRSSMiB: float64(usage.MaxRSSKiB) / 1024, errors: errors,
		steal: stealAfter - stealBefore}, nil
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
// The peak RSS (ru_maxrss of the waited child) is the pipeline's VmHWM.
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
