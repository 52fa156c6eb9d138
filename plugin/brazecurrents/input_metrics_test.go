package brazecurrents

import (
	"testing"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestInputCountersStartAtZero scrapes this distribution's prometheus
// exporter once the input is built, before it reads anything: each counter,
// with each label value known in advance, is there at 0, so that rate() and
// increase() see the first counts.
func TestInputCountersStartAtZero(t *testing.T) {
	res, url := promscrape.Resources(t)
	conf, err := inputSpec().ParseYAML("url: file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inputFromParsed(conf, res); err != nil {
		t.Fatal(err)
	}
	want := []promscrape.Series{
		{Name: "braze_currents_objects_found"}, {Name: "braze_currents_objects_done"},
		{Name: "braze_currents_objects_corrupt"}, {Name: "braze_currents_objects_failed"},
		{Name: "braze_currents_listings_failed"},
		{Name: "braze_currents_notification_receives_failed"}, {Name: "braze_currents_notifications_malformed"},
		{Name: "braze_currents_records_rejected", Label: "reason", Value: rejectTooLarge},
		{Name: "braze_currents_checkpoint_saves", Label: "result", Value: saveOK},
		{Name: "braze_currents_checkpoint_saves", Label: "result", Value: saveError},
	}
	for _, r := range skipReasons {
		want = append(want, promscrape.Series{Name: "braze_currents_objects_skipped", Label: "reason", Value: r})
	}
	promscrape.WantZero(t, promscrape.Get(t, url), want)
}
