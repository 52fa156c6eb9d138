package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// handOverRetry is how long a signal taken while Connect's stream runs is
// left to Connect's own handler before it is sent again: Connect takes it
// and logs its stop line at once, unless its handler was not in yet.
const handOverRetry = 50 * time.Millisecond

// startPhase is how far Connect's start went, for a signal received then.
type startPhase int

const (
	// Before Connect loaded the config and made its logger: nothing runs,
	// so nothing is to stop.
	beforeConfig startPhase = iota
	// Connect builds the config's components; the input may have started
	// (a braze_currents input takes its checkpoint's lease).
	building
	// The stream started: Connect's handler is in, or about to be.
	streaming
)

// earlySignals takes SIGINT and SIGTERM from the start of a run of a config
// (runsConfig), so that one stops the run gracefully at any moment. Connect (benthos v4.60.0,
// RunManagerUntilStopped) installs its own handler only once the stream
// runs, after "Launching a … instance": before, Go's default action killed
// the process outright, with no graceful stop (the checkpoint's lease kept
// from the next process until it expired) and no exit status of Connect's.
//
// A signal before the config is loaded exits at once, with status 1 (which
// run it was, a replay a script must not take for done, is not known yet;
// so for the subcommands that load none, such as lint). One while the
// components are built is held until the stream started (a second one
// then exits at once, status 1: the build may be stuck), then
// handed to Connect's handler; so is one in the moment before that handler
// is in. Handing it over is sending it again until Connect logs that its
// service stops: a signal Connect takes itself is not acted on twice, and
// stop.go sees the stop as by a signal. The run is never stopped by
// cancelling its context: Connect (v4.60.0) then stops the stream with that
// context, already done, so without draining, and exits before its
// components closed. Once a signal was taken, others are left to Connect,
// which ignores them while it stops (it never reads its channel again; only
// its shutdown_delay, which none of the shipped configs sets, ends at one).
type earlySignals struct {
	stop   *connectStop
	stderr io.Writer
	exit   func(code int)
	raise  func(os.Signal) error   // sends the process the signal again
	retry  func() <-chan time.Time // when to send it again, handing it over

	mu       sync.Mutex
	phase    startPhase
	got      os.Signal      // the first signal received, or nil
	handOffs sync.WaitGroup // hand-overs under way
	arrived  chan struct{}  // a signal was received (buffered: 1)
}

// newEarlySignals is the handling of signals for the run stop reports the
// stop of; catch starts it.
func newEarlySignals(stop *connectStop) *earlySignals {
	return &earlySignals{
		stop:   stop,
		stderr: os.Stderr,
		exit:   os.Exit,
		raise: func(sig os.Signal) error {
			p, err := os.FindProcess(os.Getpid())
			if err != nil {
				return err
			}
			return p.Signal(sig)
		},
		retry:   func() <-chan time.Time { return time.After(handOverRetry) },
		arrived: make(chan struct{}, 1),
	}
}

// runsConfig tells whether c, the command Connect's CLI runs, runs a
// config's stream: run, streams, or none (connect -c …). Only those catch
// signals early: the others (lint, echo, test, blobl, which Connect calls
// the run flags' extract function of too) load no stream to stop, and keep
// Connect's behaviour at a signal, its own handler's (blobl server ends
// with status 0 at Ctrl-C) or Go's default (killed by it).
func runsConfig(c *ucli.Context) bool {
	switch c.Command.Name {
	case c.App.Name, "run", "streams": // the app's own command is the root's
		return true
	}
	return false
}

// catch takes SIGINT and SIGTERM from now on. Before, a signal has Go's
// default action: a run's config is not read yet.
func (s *earlySignals) catch() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM) // Go's default action no longer applies
	go func() {
		for sig := range ch {
			s.take(sig)
		}
	}()
}

func (s *earlySignals) take(sig os.Signal) {
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got != nil {
		if s.phase == building {
			// A second signal while the first is held: the build may be
			// stuck (a mount that hangs), and nothing else would stop it.
			fmt.Fprintf(s.stderr, "Exiting with status 1: received %s again while the config's components were built: "+
				"no graceful stop (the checkpoint's lease, if taken, is left to expire)\n", signalName(sig))
			s.exit(1)
		}
		return
	}
	s.got = sig
	switch s.phase {
	case beforeConfig:
		fmt.Fprintf(s.stderr, "Exiting with status 1: received %s before the config was loaded: nothing was run\n", signalName(sig))
		s.exit(1)
	case streaming:
		s.goHandOver(sig)
	}
}

// configLoaded is called once Connect made the config's logger.
func (s *earlySignals) configLoaded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == beforeConfig {
		s.phase = building
	}
}

// streamStarted is called as Connect starts the stream, just before it
// installs its handler: a signal held meanwhile is handed over.
func (s *earlySignals) streamStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == streaming {
		return
	}
	s.phase = streaming
	if s.got != nil {
		s.goHandOver(s.got)
	}
}

// goHandOver sends sig again until Connect's service begins to stop (by
// it, or for another reason, such as the pipeline's end).
func (s *earlySignals) goHandOver(sig os.Signal) {
	s.handOffs.Add(1)
	go func() {
		defer s.handOffs.Done()
		for {
			select {
			case <-s.stop.stopped():
				return
			case <-s.retry():
			}
			if !s.stop.unlessStopped(func() { s.sendAgain(sig) }) {
				return
			}
		}
	}()
}

// sendAgain sends sig and waits until it arrived (to every handler at once,
// so to Connect's if in), with a bound. Run with Connect's stop line held
// off: once it took a signal, Connect (v4.60.0) logs that line, then waits
// out its shutdown_delay, if set, unless a signal comes; one still on its
// way would have cut that short.
func (s *earlySignals) sendAgain(sig os.Signal) {
	select {
	case <-s.arrived: // an earlier one's
	default:
	}
	if s.raise(sig) != nil {
		return
	}
	select {
	case <-s.arrived:
	case <-s.retry():
	}
}

// signalName names sig as Connect does in its stop line.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
