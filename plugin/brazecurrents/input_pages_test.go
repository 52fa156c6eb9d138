package brazecurrents

import (
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// Under load Braze writes a file every few seconds: one hour of one type
// holds more objects than a listing page (1,000 on S3). Every object of
// every page is read, once.
func TestInputReadsAnHourOfManyPages(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	want := map[string]bool{}
	for n := range 1100 {
		for id := range uploadFixture(t, b, fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa",
			Records: 1, Seed: 500 + uint64(n), DateHour: at14(0), Offset: n}) {
			want[id] = true
		}
	}
	s, got := streamOf(t, "url: \""+b.URL+"\"\nmax_parallel_objects: 8", "")
	runToEnd(t, s)
	expectExactly(t, got, want)
}
