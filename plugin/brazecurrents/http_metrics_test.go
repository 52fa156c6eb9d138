package brazecurrents

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

const httpUnhandledMetric = "braze_currents_http_requests_unhandled"

// TestHTTPInputCountsRequestsNetHTTPRefused: a request net/http answers
// itself, never handing it to the input (headers over 64 KiB: 431; a
// malformed request line: 400), is counted in
// braze_currents_http_requests_unhandled, from 0 at start. They showed in no
// metric: a proxy in front adding large headers, or mangling requests,
// refused every Braze request unseen but for Braze's own logs. A request
// served, and a connection closed idle, are not counted.
func TestHTTPInputCountsRequestsNetHTTPRefused(t *testing.T) {
	res, metrics := promscrape.Resources(t)
	in, url := startHTTPInputWith(t, res, "token: tok")
	promscrape.WantZero(t, promscrape.Get(t, metrics), []promscrape.Series{{Name: httpUnhandledMetric}})
	if status, _ := postTo(t, http.MethodPost, url, "tok"); status != http.StatusOK {
		t.Fatalf("a request with the token: %d, want 200", status)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/currents")
	for _, c := range []struct {
		request string
		status  int
	}{
		{"POST /currents HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("x", 70<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"NOT A REQUEST LINE\r\n\r\n", http.StatusBadRequest},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, c.request); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		res, err := http.ReadResponse(r, nil)
		if err != nil || res.StatusCode != c.status {
			t.Fatalf("%.20q: %v %v, want %d", c.request, res, err, c.status)
		}
		res.Body.Close()
		_, _ = r.ReadByte() // closed by net/http: the connection's end is seen
		conn.Close()
	}
	_ = in.Close(context.Background())
	for open := 1; open > 0; { // until every connection's end was seen
		open = 0
		in.conns.conns.Range(func(any, any) bool { open++; return true })
		runtime.Gosched()
	}
	if v, _ := promscrape.Get(t, metrics).Counter(httpUnhandledMetric, "", ""); v != 2 {
		t.Errorf("%s = %v after a 431 and a 400 of net/http, want 2", httpUnhandledMetric, v)
	}
}
