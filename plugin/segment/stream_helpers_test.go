package segment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"

	_ "github.com/currents-connect/currents-connect/plugin/segment"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

const (
	// streamWriteKey is the stand-in's and the output's write key, unless a
	// test needs its own.
	streamWriteKey = "wk-stream-test"
	// waitLimit bounds every wait, so that a bug fails a test, not hangs it.
	waitLimit = 30 * time.Second
	// retryLog is what the output logs, at debug level, per retried request.
	retryLog = "Segment request failed"
)

// logSink keeps every log line of a stream, at every level.
type logSink struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	close(s.changed)
	s.changed = make(chan struct{})
}

// count is how many lines contain substr.
func (s *logSink) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (s *logSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// waitFor blocks until at least n lines contain substr, or fails the test.
func (s *logSink) waitFor(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if s.count(substr) >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d log lines containing %q; logs:\n%s", n, substr, strings.Join(s.all(), "\n"))
		}
	}
}

// sinkHandler is a slog.Handler that renders records, attributes included,
// into a logSink.
type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.sink.add(b.String())
	return nil
}

func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{sink: h.sink, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h sinkHandler) WithGroup(string) slog.Handler { return h }

// rig is a running stream: a batch producer func in front of the output
// under test, with every log line captured.
type rig struct {
	send    service.MessageBatchHandlerFunc
	strm    *service.Stream
	logs    *logSink
	done    chan error // Run's result
	stopped bool
}

// segmentConf is the segment output's config for api: small backoffs, no
// re-batching (each pushed batch is one WriteBatch), then over.
func segmentConf(api *segmentapi.Server, over map[string]any) map[string]any {
	conf := map[string]any{
		"write_key":     streamWriteKey,
		"endpoint":      api.URL(),
		"max_in_flight": 4,
		"backoff":       map[string]any{"initial_interval": "10ms", "max_interval": "100ms"},
		"batching":      map[string]any{"count": 0, "period": ""},
	}
	maps.Copy(conf, over)
	return conf
}

// startStream builds and runs a stream whose output is output (a config
// value, rendered as JSON, which is YAML). The stream stops at cleanup.
func startStream(t *testing.T, output any) *rig {
	t.Helper()
	b := service.NewStreamBuilder()
	logs := newLogSink()
	b.SetLogger(slog.New(sinkHandler{sink: logs}))
	send, err := b.AddBatchProducerFunc()
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := json.Marshal(output)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML(string(yaml)); err != nil {
		t.Fatalf("output config %s: %v", yaml, err)
	}
	strm, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{send: send, strm: strm, logs: logs, done: make(chan error, 1)}
	go func() { r.done <- strm.Run(context.Background()) }()
	t.Cleanup(func() { r.stop(t, 10*time.Second) })
	return r
}

// stop stops the stream within timeout and waits for Run to return.
func (r *rig) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	if err := r.strm.StopWithin(timeout); err != nil {
		t.Errorf("stopping the stream: %v", err)
	}
	select {
	case <-r.done:
	case <-time.After(waitLimit):
		t.Error("the stream's Run did not return after Stop")
	}
}

// pushAsync pushes each batch from its own goroutine; the channel yields
// each batch's ack result (nil: acked), in batch order once all are in.
func (r *rig) pushAsync(ctx context.Context, batches ...service.MessageBatch) <-chan []error {
	out := make(chan []error, 1)
	go func() {
		errs := make([]error, len(batches))
		var wg sync.WaitGroup
		for i, b := range batches {
			wg.Go(func() { errs[i] = r.send(ctx, b) })
		}
		wg.Wait()
		out <- errs
	}()
	return out
}

// push pushes batches concurrently and returns their ack results.
func (r *rig) push(t *testing.T, batches ...service.MessageBatch) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return <-r.pushAsync(ctx, batches...)
}

// requireAcked fails unless every batch was acked.
func requireAcked(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("batch %d was nacked: %v", i, err)
		}
	}
}

// awaitAcks waits for a pushAsync result.
func awaitAcks(t *testing.T, ch <-chan []error) []error {
	t.Helper()
	select {
	case errs := <-ch:
		return errs
	case <-time.After(waitLimit + 5*time.Second):
		t.Fatal("timed out waiting for acks")
		return nil
	}
}

// trackCall is a track call as JSON, with optional extra properties.
func trackCall(id string, props map[string]any) []byte {
	p := map[string]any{"a": 1}
	maps.Copy(p, props)
	b, err := json.Marshal(map[string]any{
		"type": "track", "event": "Email Sent", "userId": "u1", "messageId": id,
		"timestamp": "2026-11-01T10:00:00Z", "properties": p,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// messageIDs are n ids: prefix-0, prefix-1, ...
func messageIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids
}

// trackBatches cuts ids into batches of size track calls, each with props.
func trackBatches(ids []string, size int, props map[string]any) []service.MessageBatch {
	var batches []service.MessageBatch
	for chunk := range slices.Chunk(ids, size) {
		var b service.MessageBatch
		for _, id := range chunk {
			b = append(b, service.NewMessage(trackCall(id, props)))
		}
		batches = append(batches, b)
	}
	return batches
}

// requireDelivered fails unless the stand-in accepted every id at least once
// and nothing else: exactly len(ids) unique messageIds after dedup.
func requireDelivered(t *testing.T, api *segmentapi.Server, ids []string) {
	t.Helper()
	var missing []string
	for _, id := range ids {
		if api.Count(id) < 1 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d calls never accepted, e.g. %v (stats %+v)", len(missing), len(ids), missing[:min(5, len(missing))], api.Stats())
	}
	if got := api.UniqueMessageIDs(); got != len(ids) {
		t.Fatalf("stand-in holds %d unique messageIds, want %d", got, len(ids))
	}
}

// echoingProxy forwards to api, adding the request's Authorization header
// and basic auth user to the body of 401 answers; when api drops a
// connection, it drops the client's.
func echoingProxy(t *testing.T, api *segmentapi.Server) string {
	t.Helper()
	target, err := url.Parse(api.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ModifyResponse: func(res *http.Response) error {
			if res.StatusCode != http.StatusUnauthorized {
				return nil
			}
			body, err := io.ReadAll(res.Body)
			_ = res.Body.Close()
			user, _, _ := res.Request.BasicAuth()
			body = fmt.Appendf(body, " (Authorization: %s, user %s)", res.Request.Header.Get("Authorization"), user)
			res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			res.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return err
		},
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(rp)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	return srv.URL
}

// runCLI runs the Connect CLI in-process and returns its stdout: the CLI
// offers no writer option, so os.Stdout points at a file meanwhile.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	stdout := os.Stdout
	os.Stdout = out
	code, runErr := service.RunCLIToCode(context.Background(), service.CLIOptSetArgs(append([]string{"connect"}, args...)...))
	os.Stdout = stdout
	if code != 0 || runErr != nil {
		t.Fatalf("connect %v: exit %d, %v", args, code, runErr)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// holdFirst holds the first n requests to api until all n have arrived, so
// that each opens its own connection. Without this warm-up Go's Transport
// may dial one connection more than it ever uses: a request waiting for its
// dial is handed a connection freed meanwhile, and the dial completes anyway.
func holdFirst(api *segmentapi.Server, n int) {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	api.OnRequest(func(*http.Request, []segmentapi.Call) {
		mu.Lock()
		arrived++
		k := arrived
		mu.Unlock()
		if k == n {
			close(all)
		}
		if k <= n {
			select {
			case <-all:
			case <-time.After(waitLimit):
			}
		}
	})
}
