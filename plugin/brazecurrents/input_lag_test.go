package brazecurrents

import (
	"context"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestInputCheckpointLagAfterARestart: a run reads a bucket, then the
// process restarts with nothing new to read, as when Currents stopped
// writing or the pipeline is stuck and someone restarts it. The lag gauge
// is there at once, from the newest hour the checkpoint records as done, and
// keeps growing. Before, it was absent until this process finished an
// object, so CurrentsConnectCheckpointLagHigh, which alerts on that case,
// went silent at every restart.
func TestInputCheckpointLagAfterARestart(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 3, RecordsPerFile: 2, Seed: 11,
		EventTypes: []string{"users.messages.email.Send"}})
	newest := written[0].Spec.DateHour
	for _, w := range written {
		if w.Spec.DateHour.After(newest) {
			newest = w.Spec.DateHour
		}
	}
	conf := "url: " + url + "\nwatch: false\ncheckpoint:\n  in_bucket: true\n  lease: 2s\n"
	s, got := streamOf(t, conf, "")
	runToEnd(t, s)
	if got.total() == 0 {
		t.Fatal("the first run read nothing")
	}

	res, metrics := promscrape.Resources(t)
	parsed, err := inputSpec().ParseYAML(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inputFromParsed(parsed, res)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := time.Now()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	t.Cleanup(func() { _ = in.Close(ctx) })

	lag := func() (float64, bool) {
		f := promscrape.Get(t, metrics)["braze_currents_checkpoint_lag_seconds"]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0, false
		}
		return f.GetMetric()[0].GetGauge().GetValue(), true
	}
	end := newest.Add(time.Hour)
	low, high := before.Sub(end).Truncate(time.Second).Seconds(), after.Sub(end).Seconds()
	if v, ok := lag(); !ok || v < low || v > high {
		t.Fatalf("after the restart braze_currents_checkpoint_lag_seconds is %v (present %v), want %v to %v: since the end of %s, the newest hour done",
			v, ok, low, high, newest.Format(DateHourLayout))
	}
}
