package brazecurrents

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// TestInputListingFailuresCounted: once the input has started, the bucket
// refuses a listing: that of the prefix itself (a policy or a key revoked
// mid-run), or that of one event type's directory. Each failed listing is
// counted in braze_currents_listings_failed. Before, nothing in /metrics
// moved (no object was found, none failed) and /ready stayed 200, so only
// the log and, hours later, the checkpoint lag told of it.
func TestInputListingFailuresCounted(t *testing.T) {
	for _, c := range []struct{ name, refused string }{
		{"prefix", "currents/"},
		{"directory", "event_type=" + emailSend + "/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := buckets.StartS3(t)
			for k, v := range b.Env {
				t.Setenv(k, v)
			}
			uploadFixture(t, b, fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3,
				Seed: 5, DateHour: fixtures.DefaultDateHour})
			var refusing atomic.Bool
			proxied := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
				q := r.URL.Query()
				// The check at start lists one key; a pass lists by directory.
				if refusing.Load() && r.Method == http.MethodGet && q.Has("list-type") && q.Get("max-keys") != "1" &&
					strings.HasSuffix(q.Get("prefix"), c.refused) {
					denyS3(w)
					return
				}
				forward.ServeHTTP(w, r)
			})
			res, metrics := promscrape.Resources(t)
			parsed, err := inputSpec().ParseYAML("url: \""+proxied+"\"\nwatch: true\nprogress_interval: 0s", nil)
			if err != nil {
				t.Fatal(err)
			}
			in, err := inputFromParsed(parsed, res)
			if err != nil {
				t.Fatal(err)
			}
			refusing.Store(true) // from after the check at start, which passes
			ctx := context.Background()
			if err := in.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = in.Close(ctx) })
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, ok := promscrape.Get(t, metrics).Counter("braze_currents_listings_failed", "", "")
				if ok && n > 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("braze_currents_listings_failed is %v (present %v) while the listing of %s is refused", n, ok, c.refused)
				}
				time.Sleep(20 * time.Millisecond) // polling an observable state, not timing a result
			}
		})
	}
}
