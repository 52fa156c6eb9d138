package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// profileSeconds is how long the CPU profile of our pipeline samples, from
// once it answers on its HTTP address: most of a million-event run.
const profileSeconds = 20

// profiler takes a CPU profile of a pipeline through Connect's debug
// endpoint (http.debug_endpoints), which the pipeline serves on addr.
type profiler struct {
	path    string
	addr    string
	seconds int
	done    chan error
}

// newProfiler picks a free loopback port for the pipeline's HTTP server.
func newProfiler(path string) (*profiler, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &profiler{path: path, addr: addr, seconds: profileSeconds, done: make(chan error, 1)}, nil
}

// freeAddr is a loopback address free at the time of the call.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// args and env make the pipeline serve its debug endpoints on p.addr.
func (p *profiler) args() []string { return []string{"--set", "http.debug_endpoints=true"} }
func (p *profiler) env() []string  { return []string{"CONNECT_HTTP_ADDRESS=" + p.addr} }

// start waits for the pipeline to answer, then samples it into p.path.
func (p *profiler) start(ctx context.Context) {
	go func() { p.done <- p.take(ctx) }()
}

func (p *profiler) take(ctx context.Context) error {
	base := "http://" + p.addr
	if err := waitOK(ctx, base+"/ping"); err != nil {
		return err
	}
	res, err := get(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, p.seconds))
	if err != nil {
		return fmt.Errorf("profile: %w (a run shorter than %ds ends before the profile)", err, p.seconds)
	}
	defer res.Body.Close()
	f, err := os.Create(p.path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// waitOK polls url until it answers 200.
func waitOK(ctx context.Context, url string) error {
	for {
		if res, err := get(ctx, url); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

// wait reports how the profile went.
func (p *profiler) wait() error { return <-p.done }

// runProfiled runs one line, its logs into logPath, taking its CPU profile
// into path unless path is empty.
func runProfiled(binary, dir, config, logPath string, env []string, path string, args ...string) (result, error) {
	if path == "" {
		return runLine(binary, dir, config, logPath, env, args...)
	}
	prof, err := newProfiler(path)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prof.start(ctx)
	r, err := runLine(binary, dir, config, logPath, append(append([]string{}, env...), prof.env()...), append(append([]string{}, args...), prof.args()...)...)
	cancel() // a pipeline that ended early must not leave the profiler waiting
	if perr := prof.wait(); perr != nil {
		fmt.Fprintln(os.Stderr, "bench:", perr)
	} else {
		fmt.Println("  CPU profile written to", path)
	}
	return r, err
}
