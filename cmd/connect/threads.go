package main

import (
	"runtime"
	"strconv"
)

// pipelineThreadsEnv is the variable the shipped configs read their
// pipeline's threads from (threads: ${CURRENTS_PIPELINE_THREADS:-1}).
const pipelineThreadsEnv = "CURRENTS_PIPELINE_THREADS"

// applyPipelineThreadsDefault sets CURRENTS_PIPELINE_THREADS to GOMAXPROCS
// unless the environment sets it. Connect's own default (-1) runs a thread
// per CPU of the machine (runtime.NumCPU), whatever the container's CPU
// quota, which GOMAXPROCS follows: 16 threads on a 2-CPU quota took 34% more
// CPU than 2 (docs/benchmarks.md, GC and memory settings).
func applyPipelineThreadsDefault(getenv func(string) string, setenv func(string, string) error) error {
	if getenv(pipelineThreadsEnv) != "" {
		return nil
	}
	return setenv(pipelineThreadsEnv, strconv.Itoa(runtime.GOMAXPROCS(0)))
}
