package bucket

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/currents-connect/currents-connect/tests/buckets"
)

// outputStream builds a stream whose messages come from the returned
// function, which blocks until the message is acknowledged and returns the
// error of its batch.
func outputStream(t *testing.T, b *buckets.Bucket, outputYAML string) (func(string) error, func()) {
	t.Helper()
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	sb := service.NewStreamBuilder()
	send, err := sb.AddProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.AddOutputYAML(fmt.Sprintf("bucket:\n  url: %q\n%s", b.URL, outputYAML)); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	s, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		if err := s.StopWithin(10 * time.Second); err != nil {
			t.Error(err)
		}
		<-done
		cancel()
	}
	return func(body string) error { return send(ctx, service.NewMessage([]byte(body))) }, stop
}

// sendAll sends the bodies at once and returns each one's outcome: a batch
// of the output fills only as messages arrive together.
func sendAll(send func(string) error, bodies []string) []error {
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() { errs[i] = send(body) })
	}
	wg.Wait()
	return errs
}

// objects reads every object of b: key → content.
func objects(t *testing.T, b *buckets.Bucket) map[string]string {
	t.Helper()
	bkt := b.Open(t)
	out := map[string]string{}
	it := bkt.List(nil)
	for {
		obj, err := it.Next(t.Context())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := bkt.ReadAll(t.Context(), obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[obj.Key] = string(data)
	}
}

// Six messages in batches of three make two objects, each keyed by its
// first message, one line per message, with the content type asked for.
func TestOutputWritesBatchesAsObjectsOfLines(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *buckets.Bucket{
		"file": buckets.FileBucket, "s3": buckets.StartS3, "gcs": buckets.StartGCS,
	} {
		t.Run(name, func(t *testing.T) {
			b := start(t)
			send, stop := outputStream(t, b, `  path: 'dead/${! json("n") }-${! batch_size() }.jsonl'
  content_type: application/jsonl
  batching:
    count: 3`)
			var bodies []string
			for n := range 6 {
				bodies = append(bodies, fmt.Sprintf(`{"n":%d}`, n))
			}
			for i, err := range sendAll(send, bodies) {
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			stop()

			got := objects(t, b)
			if len(got) != 2 {
				t.Fatalf("objects %v, want 2", got)
			}
			var lines []string
			for key, data := range got {
				if !strings.HasSuffix(data, "\n") {
					t.Fatalf("object %s does not end its last line: %q", key, data)
				}
				ls := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
				var first struct{ N int }
				fmt.Sscanf(ls[0], `{"n":%d}`, &first.N)
				if want := fmt.Sprintf("dead/%d-3.jsonl", first.N); key != want || len(ls) != 3 {
					t.Fatalf("object %s holds %q, want 3 lines under %s", key, ls, want)
				}
				lines = append(lines, ls...)
				attrs, err := b.Open(t).Attributes(t.Context(), key)
				if err != nil || attrs.ContentType != "application/jsonl" {
					t.Fatalf("attributes of %s: %+v, %v", key, attrs, err)
				}
			}
			slices.Sort(lines)
			if !slices.Equal(lines, bodies) {
				t.Fatalf("lines %q, want %q", lines, bodies)
			}
		})
	}
}

// A write that fails fails every message of the batch, naming the bucket
// (not its settings) and the key; nothing of it is acknowledged.
func TestOutputFailedWriteFailsTheBatch(t *testing.T) {
	cases := map[string]func(*testing.T) (*buckets.Bucket, func()){
		// Directories where the objects go: fails even for root.
		"file": func(t *testing.T) (*buckets.Bucket, func()) {
			b := buckets.FileBucket(t)
			dir := strings.TrimPrefix(b.URL, "file://")
			return b, func() {
				for _, key := range []string{"dead/3.jsonl", "dead/4.jsonl"} {
					if err := os.MkdirAll(filepath.Join(dir, key, "x"), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
		},
		"s3 stopped":  func(t *testing.T) (*buckets.Bucket, func()) { b := buckets.StartS3(t); return b, b.Stop },
		"gcs stopped": func(t *testing.T) (*buckets.Bucket, func()) { b := buckets.StartGCS(t); return b, b.Stop },
	}
	for name, setUp := range cases {
		t.Run(name, func(t *testing.T) {
			b, breakIt := setUp(t)
			send, stop := outputStream(t, b, `  path: 'dead/${! json("n") }.jsonl'
  max_in_flight: 1
  batching:
    count: 2`)
			defer stop()
			for i, err := range sendAll(send, []string{`{"n":1}`, `{"n":2}`}) {
				if err != nil {
					t.Fatalf("message %d before the failure: %v", i, err)
				}
			}
			breakIt()
			errs := sendAll(send, []string{`{"n":3}`, `{"n":4}`})
			for i, err := range errs {
				if err == nil {
					t.Fatalf("message %d acknowledged though its write failed", i)
				}
				msg := err.Error()
				if !strings.Contains(msg, "bucket "+strings.SplitN(b.URL, "?", 2)[0]) || !strings.Contains(msg, `"dead/`) ||
					strings.Contains(msg, "?endpoint=") || strings.Contains(msg, "secret") {
					t.Fatalf("error %q should name the bucket without its query, and the key", msg)
				}
			}
		})
	}
}

// A URL that no retry can open stops the stream at build.
func TestOutputRefusesBadURLs(t *testing.T) {
	for url, want := range map[string]string{
		"/var/dead":                    "has no scheme",
		"ftp://host/dir":               `unknown scheme "ftp"`,
		"file://" + t.TempDir() + "/x": "no such file or directory",
	} {
		conf, err := outputSpec().ParseYAML(fmt.Sprintf("url: %q\npath: x", url), nil)
		if err == nil {
			_, err = outputFromParsed(conf, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("url %s: error %v, want %q", url, err, want)
		}
	}
}

// A file:// bucket on a volume of its own (a container's mounted
// directory) must not depend on os.TempDir: an object written there and
// renamed into the bucket fails with "invalid cross-device link". A TMPDIR
// that does not exist stands for one on another filesystem.
func TestOutputFileBucketNeedsNoTempDir(t *testing.T) {
	b := buckets.FileBucket(t)
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "elsewhere"))
	send, stop := outputStream(t, b, `  path: 'dead/${! json("n") }.jsonl'`)
	if err := send(`{"n":1}`); err != nil {
		t.Fatalf("write through a file:// bucket used TMPDIR: %v", err)
	}
	stop()
	if got := objects(t, b); len(got) != 1 || got["dead/1.jsonl"] != "{\"n\":1}\n" {
		t.Fatalf("objects %q, want dead/1.jsonl alone", got)
	}
}

// A URL its driver refuses (a query parameter it does not know, say a
// typo) stops the stream at build, with no credentials and no network:
// opened only at Connect, it failed every attempt, retried for ever. The
// error names the field, the bucket once and the parameter, never the
// credentials or settings of the URL that the driver's message quotes.
func TestOutputRefusesWhatTheDriverRefuses(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	conf, err := outputSpec().ParseYAML(`url: "s3://user:secret@bucket?region=us-east-1&regin=SECRET"
path: x`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = outputFromParsed(conf, service.MockResources())
	if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret") || strings.Count(err.Error(), "s3://bucket") != 1 ||
		!strings.Contains(err.Error(), `url "s3://bucket": unknown query parameter "regin"`) {
		t.Fatalf("error %v: want the field, the bucket named once and the bad parameter, no credential", err)
	}
}

// A server that takes the request and never answers fails the write after
// timeout, naming the bucket and the key, instead of holding the batch and
// its place among max_in_flight for as long as the process lives.
func TestOutputWriteTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); _, _ = io.Copy(io.Discard, conn) }()
		}
	}()
	// gofakes3's bucket, its credentials, with the silent server as endpoint.
	b := buckets.StartS3(t)
	b.URL = regexp.MustCompile(`endpoint=[^&]+`).ReplaceAllString(b.URL, "endpoint=http://"+ln.Addr().String())
	send, stop := outputStream(t, b, `  path: 'dead/${! json("n") }.jsonl'
  timeout: 100ms`)
	defer stop()
	err = send(`{"n":1}`)
	if err == nil || !strings.Contains(err.Error(), `writing "dead/1.jsonl" to bucket s3://connect-test`) ||
		!strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v: want the write to fail on its timeout, naming bucket and key", err)
	}
}

// A key that cannot be interpolated fails the batch with an error naming
// the bucket, as every other failed write does.
func TestOutputBadKeyNamesTheBucket(t *testing.T) {
	b := buckets.FileBucket(t)
	send, stop := outputStream(t, b, `  path: 'dead/${! json("n").number() }.jsonl'`)
	defer stop()
	err := send(`{"n":"x"}`)
	if err == nil || !strings.Contains(err.Error(), "bucket "+b.URL) || !strings.Contains(err.Error(), "path") {
		t.Fatalf("error %v: want it to name the bucket and the path field", err)
	}
}
