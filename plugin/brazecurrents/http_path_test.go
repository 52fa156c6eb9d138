package brazecurrents

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// postTo sends an empty batch to url with the bearer token (none when empty) and
// returns the status and the answer's text.
func postTo(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"events": []}`))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	text, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(text)
}

// TestHTTPInputWrongPath: Braze set up with a wrong URL path used to get
// the router's 404, counted nowhere and logged nowhere, while Braze retried
// for 5 days. Now a request to another path is answered 404 (not naming the
// path), counted in braze_currents_http_requests, and warned of, naming the
// path to use, when it carries the token; a knock without it is not.
func TestHTTPInputWrongPath(t *testing.T) {
	url, _, logs := startHTTPStream(t)
	base := strings.TrimSuffix(url, "/currents")
	status, text := postTo(t, http.MethodPost, base+"/currents/", "tok")
	if status != http.StatusNotFound || strings.Contains(text, "/currents") {
		t.Fatalf("POST to /currents/ with the token: %d %q, want 404 not naming the path", status, text)
	}
	want := `POST \"/currents/\" carries the token, but events are received at \"/currents\": set that path in Braze's Custom HTTP URL`
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("no warning %s in the log:\n%s", want, logs)
	}
	if status, _ := postTo(t, http.MethodGet, base+"/.env", ""); status != http.StatusNotFound {
		t.Fatalf("GET /.env: %d, want 404", status)
	}
	if n := strings.Count(logs.String(), "carries the token"); n != 1 {
		t.Errorf("%d warnings of a wrong path, want 1 (a knock without the token is not warned of):\n%s", n, logs)
	}

	res, metrics := promscrape.Resources(t)
	_, url = startHTTPInputWith(t, res, "token: tok")
	base = strings.TrimSuffix(url, "/currents")
	postTo(t, http.MethodPost, base+"/other", "tok")
	postTo(t, http.MethodPost, base+"/other", "")
	if v, _ := promscrape.Get(t, metrics).Counter(httpRequestsMetric, "status", "404"); v != 2 {
		t.Errorf(`%s{status="404"} = %v after two requests to another path, want 2`, httpRequestsMetric, v)
	}
}

// TestHTTPInputPathIsMatchedExactly: a path that cleans to the configured
// one (//currents, /x/../currents) was answered by Go's router with a 307
// whose Location named the path, even to a request without the token,
// counted in no status and logged nowhere: a Braze URL with a doubled slash
// was retried for 5 days unseen. It is another path: 404, counted, warned
// of with the token. A configured path was a router pattern as well:
// "/{x}" received at any one-segment path, "/a b" panicked at start.
func TestHTTPInputPathIsMatchedExactly(t *testing.T) {
	url, _, logs := startHTTPStream(t)
	base := strings.TrimSuffix(url, "/currents")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(client *http.Client, url, token string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"events": []}`))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(text), "/currents") || res.Header.Get("Location") != "" {
			t.Errorf("POST %s: %d %q, Location %q: the answer names the path", url, res.StatusCode, text, res.Header.Get("Location"))
		}
		return res
	}
	for _, p := range []string{"//currents", "/x/../currents", "/./currents"} {
		for _, token := range []string{"", "tok"} {
			if res := post(noRedirect, base+p, token); res.StatusCode != http.StatusNotFound {
				t.Errorf("POST %s (token %q): %d, want 404", p, token, res.StatusCode)
			}
		}
		want := `POST \"` + p + `\" carries the token, but events are received at \"/currents\"`
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning %s in the log:\n%s", want, logs)
		}
	}

	res, metrics := promscrape.Resources(t)
	_, url = startHTTPInputWith(t, res, "token: tok\npath: /{x}")
	base = strings.TrimSuffix(url, "/currents")
	if r := post(noRedirect, base+"/other", "tok"); r.StatusCode != http.StatusNotFound {
		t.Errorf("path /{x}, POST /other: %d, want 404", r.StatusCode)
	}
	if v, _ := promscrape.Get(t, metrics).Counter(httpRequestsMetric, "status", "404"); v != 1 {
		t.Errorf(`%s{status="404"} = %v, want 1`, httpRequestsMetric, v)
	}
	// A space is %20 in Braze's URL.
	res, _ = promscrape.Resources(t)
	_, url = startHTTPInputWith(t, res, "token: tok\npath: /a b")
	if r := post(http.DefaultClient, strings.TrimSuffix(url, "/currents")+"/a%20b", "tok"); r.StatusCode != http.StatusOK {
		t.Errorf("path \"/a b\", POST /a%%20b: %d, want 200", r.StatusCode)
	}
}
