// Command connect is the Currents Connect distribution of Redpanda Connect:
// the standard Connect CLI with benthos core's pure and io components plus
// the Braze Currents and Segment plugins of this repository.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	_ "time/tzdata" // time zones work in images without a zoneinfo database

	"github.com/redpanda-data/benthos/v4/public/service"
	ucli "github.com/urfave/cli/v2"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents"
	_ "github.com/currents-connect/currents-connect/plugin/bucket"
	_ "github.com/currents-connect/currents-connect/plugin/deadletter"
	_ "github.com/currents-connect/currents-connect/plugin/prometheus"
	_ "github.com/currents-connect/currents-connect/plugin/queue"
	_ "github.com/currents-connect/currents-connect/plugin/segment"
)

// version and dateBuilt are set at build time with
// -ldflags "-X main.version=... -X main.dateBuilt=...".
var (
	version   = "0.1.0-dev"
	dateBuilt = "unknown"
)

func main() {
	stop := &connectStop{}
	signals := newEarlySignals(stop)
	applyMemoryDefaults(os.Getenv)
	// Fatal before any config is read, so there is no logger yet: stderr.
	if err := applyPipelineThreadsDefault(os.Getenv, os.Setenv); err != nil {
		fmt.Fprintf(os.Stderr, "setting %s: %v\n", pipelineThreadsEnv, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	httpFailed := newHTTPFailure(cancel)
	ready := &readiness{stop: stop}
	startWarnings := logStartWarnings(os.Getenv)
	service.RunCLI(ctx,
		service.CLIOptSetVersion(version, dateBuilt),
		service.CLIOptSetBinaryName("connect"),
		service.CLIOptSetProductName("Currents Connect"),
		// Called before a run reads its config: from then on a signal at
		// any moment stops the run gracefully.
		service.CLIOptCustomRunFlags(nil, func(c *ucli.Context) error {
			if runsConfig(c) {
				signals.catch()
			}
			return nil
		}),
		service.CLIOptOnLoggerInit(func(l *service.Logger) {
			signals.configLoaded()
			httpFailed.setLogger(l)
			ready.setLogger(l)
			startWarnings(l)
		}),
		service.CLIOptAddTeeLogger(slog.New(slog.NewMultiHandler(httpFailed, stop))),
		service.CLIOptOnConfigParse(func(conf *service.ParsedConfig) error {
			ready.takeManager(conf)
			stop.setReadsFiles(fileInput(conf) != nil)
			return refuseMissingInputFile(conf)
		}),
		service.CLIOptOnStreamStart(func(s *service.RunningStreamSummary) error {
			signals.streamStarted()
			return ready.onStreamStart(s)
		}),
	)
	// Connect ends a run whose context was cancelled with status 0.
	if reason := httpFailed.failed(); reason != "" {
		fmt.Fprintln(os.Stderr, reason)
		os.Exit(1)
	}
	for _, reason := range []string{brazecurrents.Unfinished(), stop.fileRunUnfinished()} {
		if reason != "" {
			fmt.Fprintln(os.Stderr, "Exiting with status 1: "+reason)
			os.Exit(1)
		}
	}
}
