package main

import (
	"runtime"
	"strconv"
	"testing"
)

// Unset, CURRENTS_PIPELINE_THREADS gets GOMAXPROCS; set, it stays.
func TestPipelineThreadsDefault(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	setenv := func(k, v string) error { env[k] = v; return nil }

	if err := applyPipelineThreadsDefault(getenv, setenv); err != nil {
		t.Fatal(err)
	}
	if got, want := env[pipelineThreadsEnv], strconv.Itoa(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("unset: %s=%q, want GOMAXPROCS %q", pipelineThreadsEnv, got, want)
	}

	env[pipelineThreadsEnv] = "7"
	if err := applyPipelineThreadsDefault(getenv, setenv); err != nil {
		t.Fatal(err)
	}
	if got := env[pipelineThreadsEnv]; got != "7" {
		t.Errorf("set to 7: changed to %q", got)
	}
}
