package segment

import (
	"testing"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestCountersStartAtZero scrapes this distribution's prometheus exporter
// once the output is built, before it sends anything: each counter, with
// each cause, is there at 0, so that rate() and increase() see the first
// counts.
func TestCountersStartAtZero(t *testing.T) {
	res, url := promscrape.Resources(t)
	conf, err := outputSpec().ParseYAML("write_key: a-write-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outputFromParsed(conf, res); err != nil {
		t.Fatal(err)
	}
	want := []promscrape.Series{{Name: "segment_calls_sent"}, {Name: "segment_batches"}, {Name: "segment_retries"}}
	for _, c := range failedCauses {
		want = append(want, promscrape.Series{Name: "segment_calls_failed", Label: "cause", Value: c})
	}
	promscrape.WantZero(t, promscrape.Get(t, url), want)
}

// The outcome of a batch whose calls were all accepted allocates nothing:
// it is read for every batch, and errors.As on each call's nil error cost
// an allocation a call.
func TestOutcomeOfAnAcceptedBatchAllocatesNothing(t *testing.T) {
	out := newTestOutput(t, "write_key: a-write-key")
	batch := trackBatch(100, 0, "")
	errs := make([]error, len(batch))
	allocs := testing.AllocsPerRun(10, func() {
		if err := out.s.outcome(batch, errs); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("the outcome of 100 accepted calls allocated %v times", allocs)
	}
}
