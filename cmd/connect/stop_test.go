package main

import (
	"log/slog"
	"strings"
	"testing"
)

// TestConnectStopKeepsWhyTheServiceStops: the first of Connect's lines that
// say its service stops is kept, and only a signal's makes a run of the file
// input one cut short.
func TestConnectStopKeepsWhyTheServiceStops(t *testing.T) {
	for _, c := range []struct {
		name      string
		lines     []string
		files     bool
		why, exit string
	}{
		{"running", []string{"Input type file is now active", "Received a request"}, true, "", ""},
		{"signal, file input", []string{"Received SIGTERM, the service is closing", "Pipeline has terminated. Shutting down the service"}, true,
			"Received SIGTERM, the service is closing", "stopped by a signal (Received SIGTERM, the service is closing)"},
		{"signal, another input", []string{"Received SIGINT, the service is closing"}, false, "Received SIGINT, the service is closing", ""},
		{"ended, then a signal", []string{"Pipeline has terminated. Shutting down the service", "Received SIGTERM, the service is closing"}, true,
			"Pipeline has terminated. Shutting down the service", ""},
		{"context cancelled", []string{"Run context was cancelled. Shutting down the service"}, true, "Run context was cancelled. Shutting down the service", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &connectStop{}
			s.setReadsFiles(c.files)
			l := slog.New(s)
			for _, line := range c.lines {
				l.Info(line)
			}
			l.Debug("Received SIGHUP, the service is closing") // below info: not Connect's line
			if got := s.began(); got != c.why {
				t.Errorf("began() = %q, want %q", got, c.why)
			}
			got := s.fileRunUnfinished()
			if (c.exit == "") != (got == "") || !strings.Contains(got, c.exit) {
				t.Errorf("fileRunUnfinished() = %q, want one with %q", got, c.exit)
			}
		})
	}
}
