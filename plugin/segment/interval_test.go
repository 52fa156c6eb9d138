package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// summaryLines keeps the lines logged through its resources that hold a
// marker, and signals each.
type summaryLines struct {
	marker string
	mu     sync.Mutex
	lines  []string
	added  chan struct{}
}

func (s *summaryLines) Write(p []byte) (int, error) {
	if line := string(p); strings.Contains(line, s.marker) {
		s.mu.Lock()
		s.lines = append(s.lines, strings.TrimSpace(line))
		s.mu.Unlock()
		s.added <- struct{}{}
	}
	return len(p), nil
}

// next waits for the next line.
func (s *summaryLines) next(t *testing.T) string {
	t.Helper()
	select {
	case <-s.added:
	case <-time.After(30 * time.Second):
		t.Fatalf("no line with %q", s.marker)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines[len(s.lines)-1]
}

// intervalOutput is a connected output on api whose clock is fake, and the
// interval summaries it logs.
func intervalOutput(t *testing.T, api *segmentapi.Server) (*output, *clockwork.FakeClock, *summaryLines) {
	t.Helper()
	conf, err := outputSpec().ParseYAML(fmt.Sprintf("{write_key: %s, endpoint: %s, summary_interval: 1h}", testKey, api.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := &summaryLines{marker: "Segment output, last", added: make(chan struct{}, 16)}
	logger := service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(lines, nil)))
	out, err := outputFromParsed(conf, service.MockResources(service.MockResourcesOptUseLogger(logger)))
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClock()
	out.s.clock = clock
	if err := out.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close(context.Background()) })
	return out, clock, lines
}

// Every summary_interval the output logs the calls sent and failed in that
// interval, not since the start; at level warn when none was sent: no call
// came (the mapping filtered out every event), every call failed, or
// Segment refused the key.
func TestOutputLogsASummaryEachInterval(t *testing.T) {
	api := segmentapi.StartT(t, testKey)
	out, clock, lines := intervalOutput(t, api)
	write := func(batch service.MessageBatch) error { return out.WriteBatch(context.Background(), batch) }
	tick := func(level, want string) {
		t.Helper()
		clock.Advance(time.Hour)
		line := lines.next(t)
		if !strings.Contains(line, "level="+level) || !strings.Contains(line, want) {
			t.Fatalf("summary\n%s\nwant level %s and\n%s", line, level, want)
		}
	}

	// Calls sent, and one invalid.
	batch := append(trackBatch(5, 0, "x"), service.NewMessage([]byte(`{"type":"bogus","userId":"u1","messageId":"bad"}`)))
	if errs := batchErrors(batch, write(batch)); errs[0] != nil || errs[5] == nil {
		t.Fatalf("write: %v", errs)
	}
	tick("INFO", `Segment output, last 1h0m0s: 5 calls sent, 1 failed (invalid 1)"`)

	// No call at all: what a mapping that filters out every event leaves.
	tick("WARN", "Segment output, last 1h0m0s: 0 calls sent, 0 failed; no call reached the output: the mapping filtered out (or could not map) every event the input read meanwhile")

	// Counted from the last line on.
	if err := write(trackBatch(3, 10, "x")); err != nil {
		t.Fatal(err)
	}
	tick("INFO", `Segment output, last 1h0m0s: 3 calls sent, 0 failed"`)

	// Every call failed.
	if err := write(service.MessageBatch{service.NewMessage([]byte(`{"type":"bogus","userId":"u2","messageId":"bad-2"}`))}); err == nil {
		t.Fatal("an invalid call was written")
	}
	tick("WARN", "0 calls sent, 1 failed (invalid 1); none was sent: every call failed")

	// The key refused: the calls are held, and the line says why.
	api.FailNext(1, http.StatusUnauthorized)
	if err := write(trackBatch(2, 20, "x")); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write answered 401: %v, want not connected", err)
	}
	tick("WARN", "0 calls sent, 0 failed; Segment is not taking calls (unauthorized): the calls held for it wait in the pipeline")
}

func TestOutputSummaryIntervalMustNotBeNegative(t *testing.T) {
	conf, err := outputSpec().ParseYAML("{dry_run: true, summary_interval: -1s}", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outputFromParsed(conf, service.MockResources()); err == nil || !strings.Contains(err.Error(), "summary_interval must not be negative") {
		t.Fatalf("got %v", err)
	}
}
