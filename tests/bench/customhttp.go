package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// The Custom HTTP workload: config/currents_http_to_segment.yaml receiving
// Braze's requests of 100 events of the 50 forwarded types, mixed, from
// httpPosters at once, into the stand-in. Each request is answered only once
// its events are delivered, so the last answer ends the run. The pipeline
// never ends by itself: its CPU time and peak RSS are read from /proc from
// the first request to the last answer (start-up left out), then it is
// stopped.
const (
	workloadHTTP    = "http"
	httpBatchEvents = 100 // Braze's batch size
	httpPosters     = 8
	httpToken       = "bench-token"
	// httpProfileSeconds is how long -cpuprofile samples the first run,
	// from its first request: 200,000 events take about 6 s.
	httpProfileSeconds = 5
)

// httpBodies are the workload's requests: its events, the types taking turns.
func httpBodies(w workload) ([][]byte, error) {
	perType := w.filesPerType * w.recordsPerFile
	byType := make([][]map[string]any, len(w.types))
	for i, t := range w.types {
		records, err := fixtures.WriteFile(io.Discard, fixtures.FileSpec{EventType: t, Records: perType, Seed: uint64(i + 1)})
		if err != nil {
			return nil, err
		}
		for _, r := range records {
			byType[i] = append(byType[i], fixtures.CustomHTTPEvent(t, r, false))
		}
	}
	var bodies [][]byte
	batch := make([]map[string]any, 0, httpBatchEvents)
	flush := func() error {
		body, err := json.Marshal(map[string]any{"events": batch})
		bodies = append(bodies, body)
		batch = batch[:0]
		return err
	}
	for n := range perType {
		for _, events := range byType {
			if batch = append(batch, events[n]); len(batch) == httpBatchEvents {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(batch) > 0 {
		return bodies, flush()
	}
	return bodies, nil
}

// runHTTPWorkload runs our Custom HTTP line opts.runs times and prints its
// table.
func (b *bench) runHTTPWorkload(w workload) ([]lineRuns, error) {
	if b.opts.stages || b.opts.only != "" && b.opts.only != "ours" {
		return nil, errors.New("the http workload runs our line alone, whole: no -stages, no -only but ours")
	}
	bodies, err := httpBodies(w)
	if err != nil {
		return nil, err
	}
	l := line{name: "ours", config: filepath.Join(b.root, "config/currents_http_to_segment.yaml"), delivers: true}
	for _, s := range b.opts.set {
		l.args = append(l.args, "--set", s)
	}
	results := []lineRuns{{name: l.name}}
	for run := range max(1, b.opts.runs) {
		profile := ""
		if run == 0 {
			profile = b.profilePath(w)
		}
		r, err := b.runHTTPOnce(w, l, bodies, profile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.name, err)
		}
		results[0].runs = append(results[0].runs, r)
		fmt.Printf("  %-8s done in %v, steal %.1f%%, %d requests to Segment, %.0f calls each\n", l.name, r.wall.Round(time.Millisecond),
			100*stealShare(r.steal, r.wall), r.delivered.requests, float64(r.delivered.accepted)/float64(max(1, r.delivered.requests)))
	}
	report(w, results, b.opts.env, b.opts.set)
	if warning := stealWarning(results[0].runs); warning != "" {
		fmt.Println(warning)
	}
	return results, nil
}

// runHTTPOnce starts the pipeline, posts every body once it is ready, and
// measures it until the last answer; with a profile path, it samples the
// pipeline's CPU meanwhile.
func (b *bench) runHTTPOnce(w workload, l line, bodies [][]byte, profile string) (result, error) {
	b.srv.Reset()
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	var prof *profiler
	if profile != "" {
		if prof, err = newProfiler(profile); err != nil {
			return result{}, err
		}
		prof.seconds, metrics = httpProfileSeconds, prof.addr
		l.args = append(append([]string{}, l.args...), prof.args()...)
	}
	logPath := filepath.Join(b.dir, l.name+"-"+w.name+".log")
	logs, err := os.Create(logPath)
	if err != nil {
		return result{}, err
	}
	defer logs.Close()
	cmd := exec.Command(b.binary, append([]string{"-c", l.config, "--log.level", "warn"}, l.args...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = b.root, logs, logs // Connect logs to stdout
	cmd.Env = append(append(append(os.Environ(), b.deliveryEnv(w)...), "CURRENTS_HTTP_TOKEN="+httpToken,
		"CURRENTS_HTTP_ADDRESS="+addr, "CONNECT_HTTP_ADDRESS="+metrics), b.opts.env...)
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	ready, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitOK(ready, "http://"+metrics+"/ready"); err != nil {
		return result{}, fmt.Errorf("the pipeline was not ready within a minute: %w (logs in %s)", err, logPath)
	}
	cpuBefore, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	stealBefore, _ := machineSteal()
	start := time.Now()
	if prof != nil {
		prof.start(context.Background())
	}
	if err := postAll("http://"+addr+"/currents", bodies); err != nil {
		return result{}, fmt.Errorf("%w (logs in %s)", err, logPath)
	}
	r := result{wall: time.Since(start)}
	stealAfter, _ := machineSteal()
	cpuAfter, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	if r.maxRSSMiB, err = peakRSSMiB(cmd.Process.Pid); err != nil {
		return result{}, err
	}
	r.cpu, r.steal = cpuAfter-cpuBefore, stealAfter-stealBefore
	if prof != nil { // measured already: the rest of its time is idle
		if err := prof.wait(); err != nil {
			return result{}, err
		}
		fmt.Printf("  CPU profile of %ds written to %s\n", prof.seconds, profile)
	}
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return result{}, err
	}
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("stopping the pipeline: %w (logs in %s)", err, logPath)
	}
	if r.errors, err = errorLines(logPath); err != nil {
		return result{}, err
	}
	if r.delivered, err = delivered(b.srv, b.opts.sameCalls); err != nil {
		return result{}, err
	}
	if r.delivered.unique < w.events()*3/4 {
		return r, fmt.Errorf("only %d of %d events reached the stand-in", r.delivered.unique, w.events())
	}
	r.events = r.delivered.unique
	return r, nil
}

// postAll posts the bodies from httpPosters at once; each must be answered
// 200, which the input answers once the request's events are delivered.
func postAll(url string, bodies [][]byte) error {
	next := make(chan []byte)
	errs := make(chan error, httpPosters)
	var wg sync.WaitGroup
	for range httpPosters {
		wg.Go(func() {
			for body := range next {
				if err := post(url, body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for _, body := range bodies {
		select {
		case next <- body:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	return errors.Join(err, <-errs)
}

func post(url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+httpToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("a request was answered %d: %s", res.StatusCode, answer)
	}
	return nil
}

// processCPU is a process's user and system time so far, from
// /proc/<pid>/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's name, which is in parentheses: state
	// first, then utime and stime 12th and 13th.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// peakRSSMiB is a process's peak RSS so far (VmHWM).
func peakRSSMiB(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kib / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}
