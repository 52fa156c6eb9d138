package brazecurrents

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

const httpRequestsMetric = "braze_currents_http_requests"

// TestHTTPInputStatusesStartAtZero scrapes this distribution's prometheus
// exporter before the input answers anything: each status it answers with
// has its series at 0, so that increase() sees a first 401 (a series born
// at 1 has no rise, and the alert on it would never fire). After one 401,
// that series is at 1 and the others still at 0.
func TestHTTPInputStatusesStartAtZero(t *testing.T) {
	res, metrics := promscrape.Resources(t)
	_, url := startHTTPInputWith(t, res, "token: tok")
	var want []promscrape.Series
	for _, s := range httpStatuses {
		want = append(want, promscrape.Series{Name: httpRequestsMetric, Label: "status", Value: strconv.Itoa(s)})
	}
	promscrape.WantZero(t, promscrape.Get(t, metrics), want)

	if status, _ := postTo(t, http.MethodPost, url, "not-the-token"); status != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", status)
	}
	scrape := promscrape.Get(t, metrics)
	if v, _ := scrape.Counter(httpRequestsMetric, "status", "401"); v != 1 {
		t.Errorf(`%s{status="401"} = %v after one 401, want 1`, httpRequestsMetric, v)
	}
	promscrape.WantZero(t, scrape, slices.DeleteFunc(want, func(s promscrape.Series) bool { return s.Value == "401" }))
	wantStatusesListed(t, metrics)
}

// wantStatusesListed fails t for each status the input answered that
// httpStatuses lacks: its series would not start at 0. Every test of the
// input started with startHTTPInput checks this once the input is closed.
func wantStatusesListed(t *testing.T, metrics string) {
	t.Helper()
	for status := range countsByLabel(t, metrics, "status")[httpRequestsMetric] {
		if !slices.ContainsFunc(httpStatuses, func(s int) bool { return strconv.Itoa(s) == status }) {
			t.Errorf("the input answered %s, which httpStatuses lacks: its %s series does not start at 0", status, httpRequestsMetric)
		}
	}
}
