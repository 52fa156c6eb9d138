package main

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// testSignals is an earlySignals whose exit, sending again and retries the
// test sees and drives.
type testSignals struct {
	*earlySignals
	stderr strings.Builder
	exits  chan int
	raised chan os.Signal
	ticks  chan time.Time // each send lets a hand-over send its signal again
}

func newTestSignals() *testSignals {
	ts := &testSignals{exits: make(chan int, 1), raised: make(chan os.Signal, 10), ticks: make(chan time.Time)}
	ts.earlySignals = &earlySignals{
		stop:    &connectStop{},
		stderr:  &ts.stderr,
		exit:    func(code int) { ts.exits <- code },
		raise:   func(sig os.Signal) error { ts.raised <- sig; return nil },
		retry:   func() <-chan time.Time { return ts.ticks },
		arrived: make(chan struct{}, 1),
	}
	return ts
}

// tickRaises lets the hand-over's retry come (a send that returns once it
// waits for it), checks it sends sig again, and lets that arrive.
func (ts *testSignals) tickRaises(t *testing.T, sig os.Signal) {
	t.Helper()
	ts.ticks <- time.Now()
	if got := <-ts.raised; got != sig {
		t.Fatalf("sent %v again, want %v", got, sig)
	}
	ts.take(sig)
}

// connectStops logs Connect's line saying its service stops.
func (ts *testSignals) connectStops(line string) { slog.New(ts.stop).Info(line) }

// A signal before the config is loaded exits at once with status 1, saying
// why; another then is not acted on.
func TestSignalBeforeConfigExits(t *testing.T) {
	ts := newTestSignals()
	ts.take(syscall.SIGTERM)
	if code := <-ts.exits; code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "Exiting with status 1: received SIGTERM before the config was loaded"; !strings.Contains(ts.stderr.String(), want) {
		t.Fatalf("stderr %q, want %q", ts.stderr.String(), want)
	}
	ts.take(os.Interrupt)
	if len(ts.exits) != 0 {
		t.Fatal("a second signal exited again")
	}
}

// A signal while the components are built is held, then, once the stream
// started, sent again until Connect says its service stops by it.
func TestSignalWhileBuildingIsHandedOver(t *testing.T) {
	ts := newTestSignals()
	ts.configLoaded()
	ts.take(os.Interrupt)
	if len(ts.exits) != 0 || len(ts.raised) != 0 {
		t.Fatal("a signal while building was acted on before the stream started")
	}
	ts.streamStarted()
	ts.tickRaises(t, os.Interrupt) // Connect's handler not in yet: sent again
	ts.tickRaises(t, os.Interrupt)
	ts.connectStops("Received SIGINT, the service is closing")
	ts.handOffs.Wait() // the hand-over ends once Connect's service stops
	if len(ts.exits) != 0 || len(ts.raised) != 0 {
		t.Fatal("a signal while building exited the process, or was sent again once Connect took it")
	}
}

// A signal while the stream runs that Connect's handler took is not sent
// again; nor is one once the service stops for another reason.
func TestSignalWhileStreamingIsLeftToConnect(t *testing.T) {
	for _, line := range []string{"Received SIGTERM, the service is closing", "Pipeline has terminated. Shutting down the service"} {
		ts := newTestSignals()
		ts.configLoaded()
		ts.streamStarted()
		ts.connectStops(line)
		ts.take(syscall.SIGTERM)
		ts.handOffs.Wait()
		if len(ts.raised) != 0 || len(ts.exits) != 0 {
			t.Fatalf("after %q, a signal was sent again or exited", line)
		}
	}
}

// A signal in the moment after the stream started, before Connect's
// handler is in, is sent again until Connect takes it.
func TestSignalBeforeConnectsHandlerIsSentAgain(t *testing.T) {
	ts := newTestSignals()
	ts.configLoaded()
	ts.streamStarted()
	ts.take(syscall.SIGTERM)
	ts.tickRaises(t, syscall.SIGTERM)
	ts.connectStops("Received SIGTERM, the service is closing")
	ts.streamStarted() // again: no second hand-over
	ts.handOffs.Wait()
	if len(ts.raised) != 0 {
		t.Fatal("sent again once Connect took it")
	}
}

func TestSignalName(t *testing.T) {
	for sig, want := range map[os.Signal]string{os.Interrupt: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "hangup"} {
		if got := signalName(sig); got != want {
			t.Errorf("signalName(%v) = %q, want %q", sig, got, want)
		}
	}
}

// A second signal while the first is held (the build may be stuck: a mount
// that hangs) exits at once with status 1, saying so; once the stream
// started, a second one is Connect's.
func TestSecondSignalWhileBuildingExits(t *testing.T) {
	ts := newTestSignals()
	ts.configLoaded()
	ts.take(os.Interrupt)
	ts.take(syscall.SIGTERM)
	if len(ts.exits) != 1 { // take exits before it returns
		t.Fatal("a second signal while building did not exit")
	}
	if code := <-ts.exits; code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "Exiting with status 1: received SIGTERM again while the config's components were built"; !strings.Contains(ts.stderr.String(), want) {
		t.Fatalf("stderr %q, want %q", ts.stderr.String(), want)
	}

	ts = newTestSignals()
	ts.configLoaded()
	ts.streamStarted()
	ts.take(syscall.SIGTERM)
	ts.connectStops("Received SIGTERM, the service is closing")
	ts.take(syscall.SIGTERM)
	ts.handOffs.Wait()
	if len(ts.exits) != 0 {
		t.Fatal("a second signal once the stream started exited the process")
	}
}

// A signal sent again arrives before Connect's stop line is handled (its
// lock held meanwhile): after that line, Connect (v4.60.0) waits out a
// shutdown_delay unless a signal comes, which one sent again, still on its
// way, would have cut short.
func TestSignalSentAgainArrivesBeforeTheStopLine(t *testing.T) {
	ts := newTestSignals()
	heldOff := make(chan bool, 1)
	ts.raise = func(sig os.Signal) error {
		free := ts.stop.mu.TryLock()
		if free {
			ts.stop.mu.Unlock()
		}
		heldOff <- !free
		ts.raised <- sig
		return nil
	}
	ts.configLoaded()
	ts.streamStarted()
	ts.take(syscall.SIGTERM)
	ts.ticks <- time.Now()
	if !<-heldOff {
		t.Fatal("Connect's stop line could be handled while the signal sent again was on its way")
	}
	sig := <-ts.raised
	logged := make(chan struct{})
	go func() {
		ts.connectStops("Received SIGTERM, the service is closing")
		close(logged)
	}()
	ts.take(sig) // it arrives
	<-logged
	ts.handOffs.Wait()
	if len(ts.raised) != 0 {
		t.Fatal("sent again once Connect took it")
	}
}

// Only the root command (connect -c …), run and streams run a config.
func TestRunsConfig(t *testing.T) {
	for args, want := range map[string]bool{
		"connect -c x.yaml": true, "connect run x.yaml": true, "connect streams": true,
		"connect lint x.yaml": false, "connect blobl server": false,
	} {
		var got bool
		record := func(c *ucli.Context) error { got = runsConfig(c); return nil }
		app := &ucli.App{Name: "connect", Action: record, Flags: []ucli.Flag{&ucli.StringFlag{Name: "c"}}, Commands: []*ucli.Command{
			{Name: "run", Action: record}, {Name: "streams", Action: record}, {Name: "lint", Action: record},
			{Name: "blobl", Subcommands: []*ucli.Command{{Name: "server", Action: record}}},
		}}
		if err := app.Run(strings.Fields(args)); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: runsConfig %v, want %v", args, got, want)
		}
	}
}
