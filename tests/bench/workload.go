package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// Workload names, as -workload takes them.
const (
	workloadFifty  = "50"
	workloadSingle = "single"
	workloadBoth   = "both"
)

// singleType is the single-type workload's event type, the most common in
// a Currents export; singleObjects is how many objects hold it.
const (
	singleType    = "users.messages.email.Send"
	singleObjects = 4
)

// workload is one backfill the lines run on.
type workload struct {
	name           string
	types          []string
	filesPerType   int
	recordsPerFile int
	stock          string  // the stock pipeline's processor resources (YAML)
	stockStages    []stage // how -stages cuts the stock pipeline
}

// newWorkload shapes the named workload: the 50 forwarded types in files of
// perFile events, or one type in singleObjects objects. events 0 takes the
// workload's own default (1,000,000 and 200,000).
func newWorkload(name string, events, perFile int) (workload, error) {
	switch name {
	case workloadFifty:
		if events == 0 {
			events = 1_000_000
		}
		types := fixtures.SegmentEventTypes()
		return workload{name: name, types: types, filesPerType: max(1, events/(perFile*len(types))), recordsPerFile: perFile,
			stock: stockFiftyProcessors, stockStages: stockFiftyStages}, nil
	case workloadHTTP:
		if events == 0 {
			events = 200_000
		}
		types := fixtures.SegmentEventTypes()
		return workload{name: name, types: types, filesPerType: 1, recordsPerFile: max(1, events/len(types))}, nil
	case workloadSingle:
		if events == 0 {
			events = 200_000
		}
		return workload{name: name, types: []string{singleType}, filesPerType: singleObjects,
			recordsPerFile: max(1, events/singleObjects), stock: stockSingleProcessors, stockStages: stockSingleStages}, nil
	}
	return workload{}, fmt.Errorf("unknown workload %q: want %s, %s, %s or %s", name, workloadFifty, workloadSingle, workloadBoth, workloadHTTP)
}

// workloads are the workloads -workload names, in the order they run.
func workloads(name string, events, perFile int) ([]workload, error) {
	names := []string{name}
	if name == workloadBoth {
		names = []string{workloadFifty, workloadSingle}
	}
	var out []workload
	for _, n := range names {
		w, err := newWorkload(n, events, perFile)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func (w workload) files() int  { return w.filesPerType * len(w.types) }
func (w workload) events() int { return w.files() * w.recordsPerFile }

func (w workload) String() string {
	if w.name == workloadHTTP {
		return fmt.Sprintf("workload %s: %d events of %d event types in Custom HTTP requests of %d, %d at once", w.name, w.events(), len(w.types), httpBatchEvents, httpPosters)
	}
	return fmt.Sprintf("workload %s: %d events of %d event types in %d files", w.name, w.events(), len(w.types), w.files())
}

// writeBucket writes the workload's Currents files under dir/bucket-<name>
// and returns that directory. A kept work directory reuses its bucket only
// if it holds this backfill.
func (w workload) writeBucket(dir string) (string, error) {
	bucket := filepath.Join(dir, "bucket-"+w.name)
	stamp := bucket + ".shape"
	shape := fmt.Sprintf("%v: %d files of %d events\n", w.types, w.files(), w.recordsPerFile)
	if have, err := os.ReadFile(stamp); err == nil && string(have) == shape {
		return bucket, nil
	}
	fmt.Printf("writing %d files of %d events for %d event types\n", w.files(), w.recordsPerFile, len(w.types))
	if err := os.RemoveAll(bucket); err != nil {
		return "", err
	}
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{EventTypes: w.types, FilesPerType: w.filesPerType,
		RecordsPerFile: w.recordsPerFile, Seed: 99, DiscardRecords: true}); err != nil {
		return "", err
	}
	return bucket, os.WriteFile(stamp, []byte(shape), 0o644)
}
