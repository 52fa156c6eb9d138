package segment

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// An endpoint copied with the API's path (…/v1, …/v1/batch) is warned of at
// start, naming where requests go, without its password: each request would
// get a 404 the output can only report as a refused key. The API's root, a
// proxy's path and the region's default are not.
func TestEndpointWithTheAPIsPathIsWarnedOf(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://api.segment.io/v1":                   "endpoint https://api.segment.io/v1 ends in /v1, and the output adds /v1/batch to it: requests go to https://api.segment.io/v1/v1/batch",
		"https://events.eu1.segmentapis.com/v1/batch": "ends in /v1/batch",
		"https://u:hunter2@proxy.example/seg/v1/":     "endpoint https://u:xxxxx@proxy.example/seg/v1/ ends in /v1",
		"https://api.segment.io":                      "",
		"https://proxy.example/segment/":              "",
		"":                                            "",
	} {
		lines, _, err := buildWithEndpoint(t, endpoint)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want == "" && lines != "":
			t.Errorf("%q: logged %q, want nothing", endpoint, lines)
		case want != "" && (strings.Count(lines, want) != 1 || strings.Contains(lines, "hunter2")):
			t.Errorf("%q: logged %q, want one line with %q and no password", endpoint, lines, want)
		}
	}
}

// An endpoint that is not an http(s) URL with a host (api.segment.io without
// its scheme, a proxy's host:port) is refused at start, naming the setting,
// without its password: every request failed as transient, retried for ever,
// and the output said so only once it counted Segment as down.
func TestEndpointThatIsNoHTTPURLIsRefused(t *testing.T) {
	for _, endpoint := range []string{"api.segment.io", "proxy.internal:8080", "ftp://api.segment.io", "https://", "//u:hunter2@api.segment.io"} {
		conf, err := outputSpec().ParseYAML(fmt.Sprintf(`{write_key: %s, endpoint: %q}`, testKey, endpoint), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = outputFromParsed(conf, service.MockResources())
		if err == nil || !strings.Contains(err.Error(), "SEGMENT_ENDPOINT") || !strings.Contains(err.Error(), "https://api.segment.io") ||
			strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: got %v, want a refusal naming SEGMENT_ENDPOINT and the API's root, without the password", endpoint, err)
		}
	}
}

// An endpoint that does not parse as a URL is refused saying why (a port
// mistyped, a space pasted in front), still without the URL itself, which
// may hold a proxy's password, nor the parser's quotes of a bad escape or
// port, which may be pieces of it (a % or a / in the password).
func TestEndpointThatIsNoURLIsRefusedSayingWhy(t *testing.T) {
	for endpoint, want := range map[string]string{
		"http://u:hunter2@proxy:8O80": "an invalid port after the host",
		"http://u:hun/ter2@proxy":     "an invalid port after the host",
		"http://u:hun%zzter2@proxy":   "an invalid % escape",
		" https://u:hunter2@proxy":    "cannot contain colon",
		"https://u:hunter2@proxy\n":   "invalid control character",
	} {
		err := checkEndpoint(endpoint)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hun") || strings.Contains(err.Error(), "%zz") {
			t.Errorf("%q: got %v, want a refusal saying %q, without the password", endpoint, err, want)
		}
	}
}

// A proxy endpoint may carry its credentials in the query (?token=…,
// ?api_key=…) or as a user alone (a token as Basic auth's user): the
// refusal and the start log name the endpoint with each value, and the
// user, written xxxxx and the parameter's name kept, as they do a password.
func TestEndpointQueryValuesAreNeverPrinted(t *testing.T) {
	for endpoint, want := range map[string]string{
		"ftp://proxy.example/?token=qtok-never-print":                       "endpoint ftp://proxy.example/?token=xxxxx is not an http:// or https:// URL",
		"https://proxy.example/seg/v1?api_key=qkey-never-print&x=1":         "endpoint https://proxy.example/seg/v1?api_key=xxxxx&x=xxxxx ends in /v1",
		"https://u:qpass-never-print@proxy.example/v1?sig=qsig-never-print": "endpoint https://u:xxxxx@proxy.example/v1?sig=xxxxx ends in /v1",
		"https://utok-never-print@proxy.example/v1":                         "endpoint https://xxxxx@proxy.example/v1 ends in /v1",
	} {
		printed, out, err := buildWithEndpoint(t, endpoint)
		if err != nil {
			printed += err.Error()
		} else {
			printed += out.s.where
		}
		if !strings.Contains(printed, want) || strings.Contains(printed, "never-print") {
			t.Errorf("%q: printed %q, want %q and no secret", endpoint, printed, want)
		}
	}
}

// buildWithEndpoint builds the output with endpoint, returning what it
// logged meanwhile.
func buildWithEndpoint(t *testing.T, endpoint string) (string, *output, error) {
	t.Helper()
	var logs strings.Builder
	mgr := service.MockResources(service.MockResourcesOptUseLogger(service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(&logs, nil)))))
	conf, err := outputSpec().ParseYAML(fmt.Sprintf(`{write_key: %s, endpoint: %q}`, testKey, endpoint), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := outputFromParsed(conf, mgr)
	return logs.String(), out, err
}

// A proxy's endpoint with a path and a query (a token it wants there) gets
// /v1/batch after its path and keeps its query: appended to the whole URL,
// requests went to …/segment?token=abc/v1/batch, the query's value ending
// in the API's path and the path the proxy's root.
func TestEndpointWithAQueryKeepsItAfterTheAPIsPath(t *testing.T) {
	api, forward := standInBehindAFront(t)
	seen := make(chan string, 10)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path + "?" + r.URL.RawQuery
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/segment")
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	for _, endpoint := range []string{proxy.URL + "/segment?token=abc", proxy.URL + "/segment/?token=abc"} {
		out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: "%s"}`, testKey, endpoint))
		if err := out.WriteBatch(context.Background(), trackBatch(2, 0, "x")); err != nil {
			t.Fatalf("%s: %v", endpoint, err)
		}
		if got := <-seen; got != "/segment/v1/batch?token=abc" {
			t.Errorf("endpoint %s: a request to %s, want /segment/v1/batch?token=abc", endpoint, got)
		}
	}
	if n := api.UniqueMessageIDs(); n != 2 {
		t.Errorf("the stand-in took %d calls, want 2", n)
	}
}

func TestBatchURLKeepsTheEndpointsPathAsEscaped(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://api.segment.io":              "https://api.segment.io/v1/batch",
		"https://api.segment.io/":             "https://api.segment.io/v1/batch",
		"https://proxy.example/seg?token=a":   "https://proxy.example/seg/v1/batch?token=a",
		"https://proxy.example/a%2Fb?token=a": "https://proxy.example/a%2Fb/v1/batch?token=a",
		"https://proxy.example/a%2Fb/":        "https://proxy.example/a%2Fb/v1/batch",
		"https://proxy.example/with%20space/": "https://proxy.example/with%20space/v1/batch",
	} {
		if got := batchURL(endpoint); got != want {
			t.Errorf("batchURL(%s) = %s, want %s", endpoint, got, want)
		}
	}
}
