package main

import (
	"testing"

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
