package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Connect (benthos v4.60.0, RunManagerUntilStopped) logs why its service
// stops, at info, once, as the stop begins: "Received SIGTERM, the service is
// closing" (or SIGINT) for a signal, and "… Shutting down the service" when
// the pipeline ended, the run's context was cancelled or its deadline nears.
const (
	signalStopPrefix = "Received "
	signalStopSuffix = ", the service is closing"
	otherStopSuffix  = ". Shutting down the service"
)

// connectStop reads Connect's log through a tee (a slog.Handler) for the line
// that says its service stops, and keeps it: from then on /ready answers 503
// (readiness).
type connectStop struct {
	mu  sync.Mutex
	why string // Connect's line, once the stop began
}

// began is Connect's line saying why its service stops, or "" before.
func (s *connectStop) began() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

func (s *connectStop) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (s *connectStop) Handle(_ context.Context, r slog.Record) error {
	signal := strings.HasPrefix(r.Message, signalStopPrefix) && strings.HasSuffix(r.Message, signalStopSuffix)
	if !signal && !strings.HasSuffix(r.Message, otherStopSuffix) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why == "" {
		s.why = r.Message
	}
	return nil
}

func (s *connectStop) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *connectStop) WithGroup(string) slog.Handler      { return s }
