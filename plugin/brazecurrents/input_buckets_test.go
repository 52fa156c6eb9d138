package brazecurrents

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"
	"github.com/currents-connect/currents-connect/tests/buckets"
	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// uploadTree writes a fixture tree of every event type into a real bucket.
func uploadTree(t *testing.T, b *buckets.Bucket, opts fixtures.TreeOptions) []fixtures.Written {
	t.Helper()
	dir := t.TempDir()
	written, err := fixtures.WriteTree(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	buckets.UploadDir(t, b, dir)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	return written
}

func TestInputOnePassOverS3(t *testing.T) {
	b := buckets.StartS3(t)
	written := uploadTree(t, b, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 31})
	conf := "url: \"" + b.URL + "\"\ninclude_event_types: [\"*\"]\ncheckpoint:\n  in_bucket: true"
	s, got := streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	s, got = streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, map[string]bool{})
}

func TestInputOnePassOverAzurite(t *testing.T) {
	b := buckets.StartAzurite(t)
	written := uploadTree(t, b, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 32, Conn: "AzureBlob"})
	s, got := streamOf(t, "url: \""+b.URL+"\"\ninclude_event_types: [\"users.messages.*\"]", "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, func(w fixtures.Written) bool {
		return strings.HasPrefix(w.Spec.EventType, "users.messages.")
	}))
}

// The same over Cloud Storage (fake-gcs-server, reached by gs:// through
// STORAGE_EMULATOR_HOST), the checkpoint kept in the bucket.
func TestInputOnePassOverGCS(t *testing.T) {
	b := buckets.StartGCS(t)
	written := uploadTree(t, b, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 34, Conn: "GCS"})
	conf := "url: \"" + b.URL + "\"\ninclude_event_types: [\"*\"]\ncheckpoint:\n  in_bucket: true"
	s, got := streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	ckpt, _, err := b.Open(t).ListPage(t.Context(), blob.FirstPageToken, 1, &blob.ListOptions{Prefix: "currents-connect/checkpoints/"})
	if err != nil || len(ckpt) == 0 {
		t.Fatalf("no checkpoint in the bucket: %v", err)
	}
	s, got = streamOf(t, conf, "")
	runToEnd(t, s)
	expectExactly(t, got, map[string]bool{})
}

// Watching a Cloud Storage bucket, with the checkpoint in it, objects
// uploaded after the start are read, and those read before are not read again.
func TestInputWatchOverGCS(t *testing.T) {
	b := buckets.StartGCS(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	checkWatchPicksUpNewObjects(t, "url: \""+b.URL+"\"\ncheckpoint:\n  in_bucket: true", func(spec fixtures.FileSpec) map[string]bool {
		spec.Conn = "GCS"
		return uploadFixture(t, b, spec)
	})
}

// uploadFixture writes one fixture file to b and returns its event ids.
func uploadFixture(t *testing.T, b *buckets.Bucket, spec fixtures.FileSpec) map[string]bool {
	t.Helper()
	var buf bytes.Buffer
	records, err := fixtures.WriteFile(&buf, spec)
	if err != nil {
		t.Fatal(err)
	}
	buckets.Upload(t, b, fixtures.Key(spec), buf.Bytes())
	want := map[string]bool{}
	for _, r := range records {
		want[r["id"].(string)] = true
	}
	return want
}

func TestInputMissingS3BucketFailsClearly(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	missing := strings.Replace(b.URL, "s3://"+b.Name+"?", "s3://no-such-bucket?", 1)
	_, err := openChecked(context.Background(), missing, "currents/", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "s3://no-such-bucket") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("error %v", err)
	}
}

// faultyProxy stands in front of a real S3 server and cuts the first
// answers to GETs of one object after cutAfter bytes of the body, like a
// network failing mid-download.
type faultyProxy struct {
	key      string
	failures int
	cutAfter int

	mu   sync.Mutex
	seen int
}

// front starts the proxy before b and returns b's URL through it.
func (p *faultyProxy) front(t *testing.T, b *buckets.Bucket) string {
	t.Helper()
	endpoint := b.URL[strings.Index(b.URL, "endpoint=")+len("endpoint="):]
	endpoint = endpoint[:strings.Index(endpoint, "&")]
	u, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, p.key) {
			p.mu.Lock()
			p.seen++
			fail := p.seen <= p.failures
			p.mu.Unlock()
			if fail {
				rp.ServeHTTP(&cuttingWriter{ResponseWriter: w, left: p.cutAfter}, r)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	ln := listenLoopback(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return strings.Replace(b.URL, endpoint, "http://"+ln.Addr().String(), 1)
}

// cuttingWriter lets left bytes of a body through, then drops the
// connection.
type cuttingWriter struct {
	http.ResponseWriter
	left int
}

func (c *cuttingWriter) Write(b []byte) (int, error) {
	if len(b) > c.left {
		_, _ = c.ResponseWriter.Write(b[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= len(b)
	return c.ResponseWriter.Write(b)
}

// An object whose download breaks twice in the middle is read again,
// resuming after the events already delivered: each event comes out once.
func TestInputResumesObjectAfterBrokenDownloads(t *testing.T) {
	b := buckets.StartS3(t)
	written := uploadTree(t, b, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 3000, Seed: 33,
		EventTypes: []string{"users.messages.email.Send", "users.messages.email.Open"}})
	proxy := &faultyProxy{key: written[0].Key, failures: 2, cutAfter: 300_000}
	s, got := streamOf(t, "url: \""+proxy.front(t, b)+"\"\nbatch_size: 100\nread_attempts: 5", "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	if proxy.seen < 3 {
		t.Fatalf("the object was fetched %d times: the broken downloads were not retried", proxy.seen)
	}
}

// A download that breaks exactly between two blocks (right after a block's
// sync marker, where the file could validly end) is a read error too: the
// object is read again from there, not recorded as a corrupt, done object
// with the rest of its events never delivered.
func TestInputResumesObjectBrokenBetweenBlocks(t *testing.T) {
	b := buckets.StartS3(t)
	written := uploadTree(t, b, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 3000, Seed: 34,
		EventTypes: []string{emailSend}})
	data, err := os.ReadFile(written[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	r := avro.NewReader(bytes.NewReader(data))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NextBlock(); err != nil {
		t.Fatal(err)
	}
	second, err := r.NextBlock()
	if err != nil {
		t.Fatal(err)
	}
	proxy := &faultyProxy{key: written[0].Key, failures: 1, cutAfter: int(second.Offset)}
	s, got := streamOf(t, "url: \""+proxy.front(t, b)+"\"\nbatch_size: 100\nread_attempts: 5", "")
	runToEnd(t, s)
	expectExactly(t, got, ids(written, nil))
	if proxy.seen < 2 {
		t.Fatalf("the object was fetched %d times: the broken download was not retried", proxy.seen)
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// A download that breaks right after a block of records too large to send
// resumes past them: each is reported (logged, counted and sent on flagged)
// once.
func TestInputReportsOversizeRecordsOnceAcrossBrokenDownloads(t *testing.T) {
	b := buckets.StartS3(t)
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	records := oversizeRecords() // record 3 is over the limit
	data := ocfFile(t, mixedSchema, "null", records[:3], records[3:4], records[4:6])
	r := avro.NewReader(bytes.NewReader(data))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var third avro.Block
	for range 3 {
		var err error
		if third, err = r.NextBlock(); err != nil {
			t.Fatal(err)
		}
	}
	key := fixtures.Key(fixtures.FileSpec{EventType: emailSend, Seed: 35})
	buckets.Upload(t, b, key, data)
	proxy := &faultyProxy{key: key, failures: 1, cutAfter: int(third.Offset)}
	got := newCollected()
	lines := runLogged(t, "url: \""+proxy.front(t, b)+"\"\nbatch_size: 100\nread_attempts: 5", got.consume)
	expectExactly(t, got, map[string]bool{"id-0": true, "id-1": true, "id-2": true, "id-4": true, "id-5": true, flaggedID(3): true})
	skipped := 0
	for _, l := range lines {
		if strings.Contains(l, "record 3 of ") {
			skipped++
		}
	}
	if skipped != 1 || !loggedFields(lines, "name=braze_currents_records_rejected", "value=1") || proxy.seen < 2 {
		t.Fatalf("record 3 logged %d times, fetched %d times:\n%s", skipped, proxy.seen, strings.Join(lines, "\n"))
	}
}
