package brazecurrents

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// A download breaks, and before it is tried again the object is replaced
// (an operator or a copy tool writes the key again). The retry used to skip
// as many records of the new content as the first attempt had delivered of
// the old, which were never sent; it reads the new content from its start.
func TestInputReadsAReplacedObjectFromItsStart(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	spec := fixtures.FileSpec{EventType: emailSend, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", Records: 3000, BlockRecords: 100, Seed: 40, DateHour: at14(0)}
	uploadFixture(t, b, spec)
	key := fixtures.Key(spec)
	var replacement bytes.Buffer
	spec.Records, spec.Seed = 2900, 41
	records, err := fixtures.WriteFile(&replacement, spec)
	if err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int32
	url := proxyS3(t, b, func(w http.ResponseWriter, r *http.Request, forward http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+key) {
			switch gets.Add(1) {
			case 1:
				forward.ServeHTTP(&cuttingWriter{ResponseWriter: w, left: 300_000}, r)
				return
			case 2:
				buckets.Upload(t, b, key, replacement.Bytes())
			}
		}
		forward.ServeHTTP(w, r)
	})
	s, got := streamOf(t, "url: \""+url+"\"\nbatch_size: 100\nread_attempts: 5", "")
	runToEnd(t, s)
	if gets.Load() < 2 {
		t.Fatalf("the object was fetched %d times: the broken download was not retried", gets.Load())
	}
	missing := 0
	for _, r := range records {
		if got.count(r["id"].(string)) == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of the %d events of the replacement never arrived", missing, len(records))
	}
}
