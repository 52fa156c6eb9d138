package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// httpServerError is how Connect (benthos v4.60.0, newStoppableManager) logs
// that its HTTP server stopped or never started: at error level, and nothing
// else. The stream runs on without /metrics, /ready and /ping: unscraped, its
// alerts silent, its probes failing elsewhere than in its log.
const httpServerError = "HTTP Server error: "

// httpFailure stops the run when Connect's HTTP server fails (an address
// that does not parse or resolve, a port in use, one the process may not
// bind): it reads Connect's log through a tee (a slog.Handler) and, at that
// line, logs why it stops and cancels the run's context. Connect then stops
// the stream at once, acknowledging nothing more: what was in flight is
// delivered again by its input. main exits non-zero with the reason.
type httpFailure struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	log    *service.Logger // the config's logger, once made
	reason string          // set once the server failed
}

func newHTTPFailure(cancel context.CancelFunc) *httpFailure {
	return &httpFailure{cancel: cancel}
}

// setLogger takes the config's logger, to say why the run stops.
func (f *httpFailure) setLogger(l *service.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = l
}

// failed is why the run was stopped, or "".
func (f *httpFailure) failed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reason
}

func (f *httpFailure) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (f *httpFailure) Handle(_ context.Context, r slog.Record) error {
	cause, ok := strings.CutPrefix(r.Message, httpServerError)
	if !ok {
		return nil
	}
	f.mu.Lock()
	first := f.reason == ""
	if first {
		f.reason = fmt.Sprintf("Connect's HTTP server failed: %s. Without it there is no /metrics, /ready or /ping, "+
			"so the run stops rather than go on unseen: check http.address (CONNECT_HTTP_ADDRESS in the shipped configs; "+
			"a free port, or http.enabled: false for none)", strings.TrimSpace(cause))
	}
	l := f.log
	f.mu.Unlock()
	if first {
		if l != nil {
			l.Error(f.reason)
		}
		f.cancel()
	}
	return nil
}

func (f *httpFailure) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *httpFailure) WithGroup(string) slog.Handler      { return f }
