package e2e

import (
	"net/url"
	"path/filepath"
	"testing"

	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestBucketReadOverAConnectionGoneSilent: the connection carrying an
// object's body goes silent mid-read (a NAT or load balancer that forgot
// it), past the first 256 KB of a 2 MB object. The read waits read_timeout
// (2 s here), fails, and the object is read again on a new connection from
// the event it reached: every event arrives, and the log says why. Before
// read_timeout the read, and the object's slot, waited until TCP gave up.
func TestBucketReadOverAConnectionGoneSilent(t *testing.T) {
	t.Parallel()
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

	u, err := url.Parse(bucket.URL)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	front := startSilencingProxy(t, endpoint.Host)
	front.silenceAfter(256 << 10)
	q := u.Query()
	q.Set("endpoint", "http://"+front.addr())
	u.RawQuery = q.Encode()
	through := *bucket
	through.URL = u.String()

	env := bucketEnv(&through, srv, filepath.Join(t.TempDir(), "dead.jsonl"))
	p := runToEnd(t, env, "run", "--set", "input.braze_currents.read_timeout=2s", shippedConfig)
	if front.silenced() != 1 {
		t.Fatalf("%d connections went silent, want the one reading the object", front.silenced())
	}
	const stalled = "the bucket sent nothing for 2s (read_timeout)"
	if p.count(stalled) == 0 {
		t.Fatalf("the log does not say %q:\n%s", stalled, lastLines(p.logs(), 20))
	}
	checkDeadLetters(t, srv, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), want, noUser, true)
	checkDelivered(t, srv, want)
}
