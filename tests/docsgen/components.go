package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/redpanda-data/benthos/v4/public/service"
)

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

// specHashes maps kind dir → component name → hash of its spec.
type specHashes map[string]map[string]string

func hashSpecs(env *service.Environment) (specHashes, error) {
	hashes := specHashes{}
	var err error
	for _, k := range kinds {
		hashes[k.dir] = map[string]string{}
		k.walk(env, func(name string, view *service.ConfigView) {
			spec, jerr := view.FormatJSON()
			if jerr != nil && err == nil {
				err = fmt.Errorf("%s %s: %w", k.singular, name, jerr)
			}
			sum := sha256.Sum256(spec)
			hashes[k.dir][name] = hex.EncodeToString(sum[:])
		})
	}
	return hashes, err
}

// printSpecHashes is the baseline build's output.
func printSpecHashes(env *service.Environment) error {
	hashes, err := hashSpecs(env)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(hashes)
}

// baselineSpecs builds and runs this command without the plugin imports.
func baselineSpecs(root string) (specHashes, error) {
	out, err := goCmd(root, "run", "-tags", baselineTag, selfPkg, "-baseline")
	if err != nil {
		return nil, err
	}
	var hashes specHashes
	if err := json.Unmarshal(out, &hashes); err != nil {
		return nil, fmt.Errorf("baseline output: %w", err)
	}
	if len(hashes["inputs"]) == 0 {
		return nil, fmt.Errorf("baseline has no inputs: %.200s", out)
	}
	return hashes, nil
}

// ourComponents returns the components of env that the baseline lacks or
// specifies differently, sorted by kind and name.
func ourComponents(env *service.Environment, base specHashes) ([]component, error) {
	hashes, err := hashSpecs(env)
	if err != nil {
		return nil, err
	}
	var ours []component
	for _, k := range kinds {
		k.walk(env, func(name string, view *service.ConfigView) {
			if hashes[k.dir][name] != base[k.dir][name] {
				ours = append(ours, component{k, name, view})
			}
		})
	}
	sort.Slice(ours, func(i, j int) bool { return ours[i].page() < ours[j].page() })
	return ours, nil
}
