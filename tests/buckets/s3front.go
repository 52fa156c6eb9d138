package buckets

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// S3Endpoint is the URL of the S3 server b's URL names (http://host:port).
func (b *Bucket) S3Endpoint(t testing.TB) *url.URL {
	t.Helper()
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil || endpoint.Host == "" {
		t.Fatalf("%s names no S3 endpoint (%v)", b.URL, err)
	}
	return endpoint
}

// Through is b with its requests sent to endpoint (http://host:port), a
// front a test put before b's S3 server, instead of to the server.
func (b *Bucket) Through(t testing.TB, endpoint string) *Bucket {
	t.Helper()
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("endpoint", endpoint)
	u.RawQuery = q.Encode()
	through := *b
	through.URL = u.String()
	return &through
}

// ProxyS3 puts before b's S3 server an HTTP front whose requests serve
// answers (forward hands one to the server), and returns b through it. The
// front stops when the test ends.
func ProxyS3(t testing.TB, b *Bucket, serve func(w http.ResponseWriter, r *http.Request, forward http.Handler)) *Bucket {
	t.Helper()
	forward := httputil.NewSingleHostReverseProxy(b.S3Endpoint(t))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r, forward) }))
	t.Cleanup(srv.Close)
	return b.Through(t, srv.URL)
}
