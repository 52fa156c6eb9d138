package e2e

import (
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
	"github.com/currents-connect/currents-connect/tests/silentfront"
)

// TestBucketReadOverAConnectionGoneSilent: the connection carrying an
// object's body goes silent mid-read (a NAT or load balancer that forgot
// it), past the first 256 KB of a 2 MB object. The read waits read_timeout
// (2 s here), fails, and the object is read again on a new connection from
// the event it reached: every event arrives, and the log says why. Before
// read_timeout the read, and the object's slot, waited until TCP gave up.
func TestBucketReadOverAConnectionGoneSilent(t *testing.T) {
	parallelWaiting(t)
	dir := filepath.Join(t.TempDir(), "tree")
	written, err := fixtures.WriteTree(dir, fixtures.TreeOptions{EventTypes: []string{"users.messages.email.Send"},
		RecordsPerFile: 4000, Seed: 79})
	if err != nil {
		t.Fatal(err)
	}
	want, noUser := expectedIDs(written)
	bucket, _, _ := buckets.StartS3Process(t, s3Server, "")
	buckets.UploadDir(t, bucket, dir)
	srv := segmentapi.StartT(t, e2eWriteKey)

	front := silentfront.Start(t, bucket.S3Endpoint(t).Host)
	front.SilenceAfter(256 << 10)
	env := bucketEnv(bucket.Through(t, "http://"+front.Addr()), srv, filepath.Join(t.TempDir(), "dead.jsonl"))
	p := runToEnd(t, env, "run", "--set", "input.braze_currents.read_timeout=2s", shippedConfig)
	if front.Silenced() != 1 {
		t.Fatalf("%d connections went silent, want the one reading the object", front.Silenced())
	}
	const stalled = "the bucket sent nothing for 2s (read_timeout)"
	if p.count(stalled) == 0 {
		t.Fatalf("the log does not say %q:\n%s", stalled, lastLines(p.logs(), 20))
	}
	checkDeadLetters(t, srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), want, noUser, true)
	checkDelivered(t, srv, want)
}

// TestBucketListingOverAConnectionGoneSilent: the bucket takes a listing and
// never answers it (a connection gone silent, as above, at the HTTP level):
// the first check that the bucket can be listed, at start, and the first
// page of the first pass. Each waits read_timeout (2 s here) and fails with
// that reason; the start is tried again, the pass listed again, and every
// event arrives. Before, each waited until TCP gave up, the input idle.
func TestBucketListingOverAConnectionGoneSilent(t *testing.T) {
	parallelWaiting(t)
	r := newFaultRig(t, 1, 10, 80)
	// The check at start lists one key (max-keys=1), a pass lists by
	// directory (delimiter /); the shards' check lists the checkpoints.
	var checks, passes, held atomic.Int64
	stop := make(chan struct{})
	through := buckets.ProxyS3(t, r.bucket, func(w http.ResponseWriter, req *http.Request, forward http.Handler) {
		if req.Method == http.MethodGet && req.URL.Query().Has("list-type") {
			var n *atomic.Int64
			switch {
			case req.URL.Query().Get("max-keys") == "1":
				n = &checks
			case req.URL.Query().Get("delimiter") == "/":
				n = &passes
			}
			if n != nil && n.Add(1) == 1 { // no answer
				held.Add(1)
				select {
				case <-req.Context().Done():
				case <-stop:
				}
				return
			}
		}
		forward.ServeHTTP(w, req)
	})
	t.Cleanup(func() { close(stop) }) // runs before the front's Close
	env := bucketEnv(through, r.srv, filepath.Join(t.TempDir(), "dead.jsonl"))
	p := runToEnd(t, env, "run", "--set", "input.braze_currents.read_timeout=2s", shippedConfig)
	const timedOut = "the bucket sent nothing for 2s (read_timeout)"
	if held.Load() != 2 || p.count("Failed to connect to braze_currents", timedOut) != 1 || p.count("Listing", "failed, retrying", timedOut) != 1 {
		t.Fatalf("%d listings held (%d checks, %d of passes); want the first of each held and logged as timed out:\n%s",
			held.Load(), checks.Load(), passes.Load(), lastLines(p.logs(), 20))
	}
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}
