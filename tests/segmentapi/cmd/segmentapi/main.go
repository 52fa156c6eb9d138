// Command segmentapi runs the Segment Tracking API stand-in with its control
// API, for end-to-end tests that drive the real pipeline binary:
//
//	go run ./tests/segmentapi/cmd/segmentapi -addr 127.0.0.1:0 -write-key KEY
//
// The first line of stdout is "listening http://127.0.0.1:PORT" (https://
// with -tls-cert and -tls-key).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := segmentapi.RunCommand(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "segmentapi:", err)
		stop()
		os.Exit(1)
	}
}
