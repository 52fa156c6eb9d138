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
	// An input's read failed. The file input (v4.60.0) then closes the file
	// it was reading and goes on with the next: the rest of the file is
	// never read.
	readFailedPrefix = "Failed to read message: "
)

// connectStop reads Connect's log through a tee (a slog.Handler) for the line
// that says its service stops, and keeps it: from then on /ready answers 503
// (readiness) and, if a signal stopped a run of the file input, main exits
// non-zero (fileRunUnfinished); so it does when that input failed a read.
type connectStop struct {
	mu       sync.Mutex
	why      string // Connect's line, once the stop began
	bySignal bool
	// readFailed is the first read the input failed, or "".
	readFailed string
	// readsFiles is set when the config's input is a file input, which
	// reads its files once and ends: a dead letter replay.
	readsFiles bool
	// closed once the stop began (made on first use).
	stopping chan struct{}
}

// began is Connect's line saying why its service stops, or "" before.
func (s *connectStop) began() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

// stopped is closed once the service begins to stop.
func (s *connectStop) stopped() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stoppingLocked()
}

func (s *connectStop) stoppingLocked() chan struct{} {
	if s.stopping == nil {
		s.stopping = make(chan struct{})
	}
	return s.stopping
}

// unlessStopped runs fn unless the service began to stop, holding off
// Connect's stop line meanwhile, and tells whether it ran.
func (s *connectStop) unlessStopped(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why != "" {
		return false
	}
	fn()
	return true
}

func (s *connectStop) setReadsFiles(files bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readsFiles = files
}

// fileRunUnfinished is why a run of the file input must exit non-zero, or "":
// Connect ends a run stopped by a signal, or one whose input left the rest of
// a file unread (a line over the scanner's max_buffer_size, a read error of
// the disk), with status 0, as one whose input read every line and
// delivered it, so a script that replays dead letters and then deletes the
// file read could not tell them apart.
func (s *connectStop) fileRunUnfinished() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.readsFiles:
		return ""
	case s.bySignal:
		return "the file input's run was stopped by a signal (" + s.why + ") before it read and delivered every line: " +
			"lines may be left neither sent nor dead-lettered; run it again before deleting what it read"
	case s.readFailed != "":
		return "the file input could not read a file to its end (" + s.readFailed + "): what followed in that file " +
			"was neither sent nor dead-lettered; fix the cause (a line over the scanner's max_buffer_size, a read error, " +
			"a damaged Avro file) and run it again before deleting what it read"
	}
	return ""
}

func (s *connectStop) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (s *connectStop) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && strings.HasPrefix(r.Message, readFailedPrefix) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.readFailed == "" {
			s.readFailed = strings.TrimSpace(strings.TrimPrefix(r.Message, readFailedPrefix))
		}
		return nil
	}
	signal := strings.HasPrefix(r.Message, signalStopPrefix) && strings.HasSuffix(r.Message, signalStopSuffix)
	if !signal && !strings.HasSuffix(r.Message, otherStopSuffix) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why == "" {
		s.why, s.bySignal = r.Message, signal
		close(s.stoppingLocked())
	}
	return nil
}

func (s *connectStop) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *connectStop) WithGroup(string) slog.Handler      { return s }
