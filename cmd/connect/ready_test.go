package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestConnectEndpointsFromResources: the resources of a parsed config
// unwrap to a manager that registers endpoints (here the mock manager of
// benthos' MockResources; the binary's is the real one, TestCustomHTTPStopTurnsReadyDown):
// a benthos that changes how fails here, not in production only.
func TestConnectEndpointsFromResources(t *testing.T) {
	reg, err := connectEndpoints(service.MockResources())
	if err != nil || reg == nil {
		t.Fatalf("connectEndpoints: %v, %v", reg, err)
	}
}

// TestReadyAnswersWhenTheStopBeginsWhileItWaitsOnStatuses: Connect's stream
// holds its connection statuses behind a lock for as long as it stops, so a
// /ready that asked for them just before the stop began waited for the whole
// drain (in e2e, TestCustomHTTPStopTurnsReadyDown timed out so). It answers
// 503, saying why, once the stop begins.
func TestReadyAnswersWhenTheStopBeginsWhileItWaitsOnStatuses(t *testing.T) {
	stop := &connectStop{}
	r := &readiness{stop: stop}
	asked, held := make(chan struct{}), make(chan struct{})
	defer close(held)
	rec := httptest.NewRecorder()
	served := make(chan struct{})
	go func() {
		defer close(served)
		r.serve(rec, func() []service.ConnectionStatus {
			close(asked)
			<-held // the lock Connect's stop holds
			return nil
		})
	}()
	<-asked
	why := "Received SIGTERM, the service is closing"
	if err := stop.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, why, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-served:
	case <-time.After(30 * time.Second): // a hang guard: it answers at once
		t.Fatal("/ready still waits on the statuses after the stop began")
	}
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"stopping: `+why+`"`) {
		t.Fatalf("/ready answered %d %s", rec.Code, rec.Body)
	}
}
