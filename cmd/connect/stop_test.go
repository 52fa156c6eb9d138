package main

import (
	"log/slog"
	"testing"
)

// TestConnectStopKeepsWhyTheServiceStops: the first of Connect's lines that
// say its service stops is kept.
func TestConnectStopKeepsWhyTheServiceStops(t *testing.T) {
	for _, c := range []struct {
		name  string
		lines []string
		why   string
	}{
		{"running", []string{"Input type file is now active", "Received a request"}, ""},
		{"signal", []string{"Received SIGTERM, the service is closing", "Pipeline has terminated. Shutting down the service"},
			"Received SIGTERM, the service is closing"},
		{"ended, then a signal", []string{"Pipeline has terminated. Shutting down the service", "Received SIGTERM, the service is closing"},
			"Pipeline has terminated. Shutting down the service"},
		{"context cancelled", []string{"Run context was cancelled. Shutting down the service"}, "Run context was cancelled. Shutting down the service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &connectStop{}
			l := slog.New(s)
			for _, line := range c.lines {
				l.Info(line)
			}
			l.Debug("Received SIGHUP, the service is closing") // below info: not Connect's line
			if got := s.began(); got != c.why {
				t.Errorf("began() = %q, want %q", got, c.why)
			}
		})
	}
}
