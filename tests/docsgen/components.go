package main

import (
	"fmt"
	"sort"

	"github.com/redpanda-data/benthos/v4/public/service"

	// The binary's components: benthos core's and ours (see cmd/connect).
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/currents-connect/currents-connect/plugin/brazecurrents"
	_ "github.com/currents-connect/currents-connect/plugin/bucket"
	_ "github.com/currents-connect/currents-connect/plugin/deadletter"
	_ "github.com/currents-connect/currents-connect/plugin/prometheus"
	_ "github.com/currents-connect/currents-connect/plugin/queue"
	_ "github.com/currents-connect/currents-connect/plugin/segment"
)

// ourList lists the components the packages under plugin/ register, by kind
// dir and name; TestComponentList keeps it complete.
var ourList = []struct{ dir, name string }{
	{"inputs", "braze_currents"},
	{"inputs", "braze_currents_http"},
	{"inputs", "queue"},
	{"metrics", "prometheus"},
	{"outputs", "bucket"},
	{"outputs", "dead_letter_file"},
	{"outputs", "queue"},
	{"outputs", "segment"},
	{"processors", "braze_currents_count"},
	{"scanners", "braze_currents"},
}

// kind is a component type: its docs directory, its name, and its walker.
type kind struct {
	dir, singular string
	walk          func(*service.Environment, func(string, *service.ConfigView))
}

// kinds covers every component type a plugin can register, sorted by dir.
var kinds = []kind{
	{"buffers", "buffer", (*service.Environment).WalkBuffers},
	{"caches", "cache", (*service.Environment).WalkCaches},
	{"inputs", "input", (*service.Environment).WalkInputs},
	{"metrics", "metrics exporter", (*service.Environment).WalkMetrics},
	{"outputs", "output", (*service.Environment).WalkOutputs},
	{"processors", "processor", (*service.Environment).WalkProcessors},
	{"rate_limits", "rate limit", (*service.Environment).WalkRateLimits},
	{"scanners", "scanner", (*service.Environment).WalkScanners},
	{"tracers", "tracer", (*service.Environment).WalkTracers},
}

// component is one of ours.
type component struct {
	kind kind
	name string
	view *service.ConfigView
}

// page is the component's path relative to docs/components.
func (c component) page() string { return c.kind.dir + "/" + c.name + ".md" }

// ourComponents finds every component of ourList in env, sorted by page; one
// that env lacks is an error.
func ourComponents(env *service.Environment) ([]component, error) {
	var found []component
	for _, o := range ourList {
		n := len(found)
		for _, k := range kinds {
			if k.dir != o.dir {
				continue
			}
			k.walk(env, func(name string, view *service.ConfigView) {
				if name == o.name {
					found = append(found, component{k, name, view})
				}
			})
		}
		if len(found) == n {
			return nil, fmt.Errorf("%s %s is not registered", o.dir, o.name)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].page() < found[j].page() })
	return found, nil
}
