package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// readyPath is Connect's readiness endpoint, which readiness serves instead.
const readyPath = "/ready"

// endpointRegistrar is the method of Connect's manager (benthos v4.60.0:
// manager.Type) that serves a handler at a path of Connect's HTTP server; a
// path registered again gets the new handler.
type endpointRegistrar interface {
	RegisterEndpoint(path, desc string, h http.HandlerFunc)
}

// readiness serves Connect's /ready as Connect does, and 503 from the moment
// the service begins to stop: Connect's answers 200 while the pipeline
// drains, up to shutdown_timeout, so a load balancer checking it (on VMs;
// Kubernetes takes a terminating pod out itself) went on sending Braze's
// requests to a process that would answer none of them 200. /ping and
// /metrics are left as they are.
type readiness struct {
	stop *connectStop
	mu   sync.Mutex
	reg  endpointRegistrar // Connect's manager, once the config is parsed
	log  *service.Logger
}

func (r *readiness) setLogger(l *service.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = l
}

// takeManager keeps Connect's manager from the parsed config, for
// onStreamStart. Streams mode (a config with no input) is left alone: its
// /ready is the streams', answered otherwise.
func (r *readiness) takeManager(conf *service.ParsedConfig) {
	if !conf.Contains("input") {
		return
	}
	reg, err := connectEndpoints(conf.Resources())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reg = reg
	if err != nil && r.log != nil {
		r.log.Warnf("%s cannot be made to answer 503 once the service begins to stop (%v): it answers 200 until the process exits", readyPath, err)
	}
}

// connectEndpoints is Connect's manager, whose RegisterEndpoint serves a path
// of its HTTP server. Connect's public API (v4.60.0) offers a run of the CLI
// no way to serve one; the Resources of the parsed config unwrap to its
// manager, through a method Unwrap of a type of benthos' own, reached by
// reflection. A later benthos that changes it is reported, not a panic.
func connectEndpoints(res *service.Resources) (endpointRegistrar, error) {
	unwrap := reflect.ValueOf(res.XUnwrapper()).MethodByName("Unwrap")
	if !unwrap.IsValid() || unwrap.Type().NumIn() != 0 || unwrap.Type().NumOut() != 1 {
		return nil, errors.New("Connect's resources no longer unwrap to its manager")
	}
	reg, ok := unwrap.Call(nil)[0].Interface().(endpointRegistrar)
	if !ok {
		return nil, fmt.Errorf("Connect's manager (%s) registers no endpoint", unwrap.Type().Out(0))
	}
	return reg, nil
}

// onStreamStart replaces the /ready Connect registered as the stream started.
// A config reloaded under -w (watch) starts a stream that registers Connect's
// again, which then serves for the rest of the run.
func (r *readiness) onStreamStart(s *service.RunningStreamSummary) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg != nil {
		r.reg.RegisterEndpoint(readyPath, "Returns 200 OK if all inputs and outputs are connected, otherwise a 503 is returned; 503 once the service begins to stop.",
			func(w http.ResponseWriter, _ *http.Request) { r.serve(w, s.ConnectionStatuses) })
	}
	return nil
}

// connStatus is a component's status as Connect's /ready writes it.
type connStatus struct {
	Label     string `json:"label"`
	Path      string `json:"path"`
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
}

// dotPath writes a component's path as Connect does (query.SliceToDotPath).
var dotPath = strings.NewReplacer("~", "~0", ".", "~1")

// serve answers as Connect's /ready does (200 when the input and the output
// have statuses and all are connected, else 503, the statuses as JSON), but
// 503 once the service stops, saying why, without statuses: Connect's
// stream holds them behind a lock for as long as it stops. A request that
// asked for them just before the stop began would wait for the whole drain
// (up to shutdown_timeout, a load balancer's check timing out meanwhile): it
// is answered when the stop begins instead.
func (r *readiness) serve(w http.ResponseWriter, statuses func() []service.ConnectionStatus) {
	w.Header().Set("Content-Type", "application/json")
	var res readyAnswer
	if why := r.stop.began(); why != "" {
		r.stopping(w, why)
		return
	}
	got := make(chan []service.ConnectionStatus, 1)
	go func() { got <- statuses() }() // returns once the stop ends, if it waits on it
	var conns []service.ConnectionStatus
	select {
	case conns = <-got:
	case <-r.stop.stopped():
		r.stopping(w, r.stop.began())
		return
	}
	connected, layers := true, map[string]bool{}
	for _, c := range conns {
		path := c.Path()
		escaped := make([]string, len(path))
		for i, p := range path {
			escaped[i] = dotPath.Replace(p)
		}
		if len(path) > 0 {
			layers[path[0]] = true
		}
		s := connStatus{Label: c.Label(), Path: strings.Join(escaped, "."), Connected: c.Active()}
		if err := c.Err(); err != nil {
			s.Error = err.Error()
		}
		connected = connected && c.Active()
		res.Statuses = append(res.Statuses, s)
	}
	if !connected || !layers["input"] || !layers["output"] {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(res)
}

// stopping answers 503 for a service that began to stop, saying why.
func (r *readiness) stopping(w http.ResponseWriter, why string) {
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(readyAnswer{Error: "stopping: " + why})
}

// readyAnswer is the body of /ready, as Connect writes it.
type readyAnswer struct {
	Error    string       `json:"error,omitempty"`
	Statuses []connStatus `json:"statuses"`
}
