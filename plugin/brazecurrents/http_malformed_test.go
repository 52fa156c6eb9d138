package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// malformedEvent has properties that are not an object: answered 400, Braze
// re-sent it alone and dropped it for good when answered 400 again.
const malformedEvent = `{"event_type": "users.messages.email.Open", "id": "bad-1", "properties": "oops"}`

// streamLog is a stream's log: the URL the Custom HTTP input listens at, and
// the lines.
type streamLog struct {
	url   chan string
	once  sync.Once
	mu    sync.Mutex
	lines strings.Builder
}

var listeningAt = regexp.MustCompile(`Receiving Braze Currents events at (http://[^\s"]+)`)

func (l *streamLog) Write(p []byte) (int, error) {
	if m := listeningAt.FindSubmatch(p); m != nil {
		l.once.Do(func() { l.url <- string(m[1]) })
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines.Write(p)
}

func (l *streamLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines.String()
}

// delivery is a batch the stream's output received, and the answer it gives.
type delivery struct {
	batch service.MessageBatch
	ack   chan error
}

// startHTTPStream runs a stream from the braze_currents_http input to an
// output that hands each batch to the test, which acknowledges it (nil) or
// refuses it (an error), as the shipped configs' outputs do.
func startHTTPStream(t *testing.T) (string, <-chan delivery, *streamLog) {
	t.Helper()
	_, url, deliveries, logs := runHTTPStream(t)
	return url, deliveries, logs
}

// runHTTPStream is startHTTPStream with the stream, for a test that stops
// it; stopped again at the test's end.
func runHTTPStream(t *testing.T) (*service.Stream, string, <-chan delivery, *streamLog) {
	t.Helper()
	logs := &streamLog{url: make(chan string, 1)}
	deliveries := make(chan delivery)
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))) // warnings past the first go to debug (logThrottle)
	for _, err := range []error{
		b.AddInputYAML("braze_currents_http:\n  address: 127.0.0.1:0\n  token: tok"),
		b.SetMetricsYAML("none: {}"),
		b.AddBatchConsumerFunc(func(ctx context.Context, batch service.MessageBatch) error {
			d := delivery{batch, make(chan error)}
			select {
			case deliveries <- d:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case err := <-d.ack:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		stop, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelStop()
		_ = s.Stop(stop)
		cancel()
		<-done
	})
	select {
	case url := <-logs.url:
		return s, url, deliveries, logs
	case err := <-done:
		t.Fatalf("the stream ended before listening: %v\n%s", err, logs)
	}
	return nil, "", nil, nil
}

// TestHTTPInputSendsMalformedEventsOnAsErrors: a request of three events, one
// malformed, hands all three down the pipeline, the malformed one flagged
// with its reason and as it came; the request is answered 200 only once all
// of them (the errored one included: it reached the dead letter) were
// acknowledged, and 503 when they were refused.
func TestHTTPInputSendsMalformedEventsOnAsErrors(t *testing.T) {
	url, deliveries, logs := startHTTPStream(t)
	body := `{"events": [` + testEvent + `, ` + malformedEvent + `, ` + testEvent + `]}`
	for _, refusal := range []error{nil, errors.New("the dead letter file is not writable")} {
		answer := postAsync(http.DefaultClient, url, body)
		var d delivery
		select {
		case d = <-deliveries:
		case r := <-answer:
			t.Fatalf("answered %d %q without handing the events over", r.status, r.body)
		}
		if len(d.batch) != 3 {
			t.Fatalf("%d messages, want the request's 3", len(d.batch))
		}
		for _, i := range []int{0, 2} {
			if err := d.batch[i].GetError(); err != nil {
				t.Fatalf("good event %d flagged: %v", i, err)
			}
		}
		bad := d.batch[1]
		want := `event 1 (id "bad-1"): properties is a JSON string, not an object`
		if err := bad.GetError(); err == nil || err.Error() != want {
			t.Fatalf("the malformed event's error: %v, want %q", err, want)
		}
		if raw, err := bad.AsBytes(); err != nil || string(raw) != malformedEvent {
			t.Fatalf("the malformed event's content: %q (%v), want its bytes as received", raw, err)
		}
		et, _ := bad.MetaGet(MetaEventType)
		src, _ := bad.MetaGet(MetaSource)
		idx, _ := bad.MetaGetMut(MetaRecordIndex)
		goodSrc, _ := d.batch[0].MetaGet(MetaSource)
		if et != "users.messages.email.Open" || src != goodSrc || !strings.HasPrefix(src, "http request ") || idx != int64(1) {
			t.Fatalf("the malformed event's metadata: type %q, source %q (the others' %q), index %v", et, src, goodSrc, idx)
		}
		select {
		case r := <-answer:
			t.Fatalf("answered %d %q before the acknowledgement", r.status, r.body)
		default:
		}
		d.ack <- refusal
		r := <-answer
		switch {
		case refusal == nil && (r.status != http.StatusOK || !strings.Contains(r.body, "1 of them malformed")):
			t.Fatalf("acknowledged: %d %q, want 200 saying one was malformed", r.status, r.body)
		case refusal != nil && (r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "not writable")):
			t.Fatalf("refused: %d %q, want 503 with the reason", r.status, r.body)
		}
	}
	// One line a request: a warning, then, within the minute, at debug level
	// (logThrottle), saying how many it stood for at the next warning.
	line := `event 1 (id \"bad-1\"): properties is a JSON string, not an object (sent on as an error)`
	if n, warned := strings.Count(logs.String(), line), strings.Count(logs.String(), "level=WARN msg=\"http request 1 from"); n != 2 || warned != 1 {
		t.Fatalf("%d lines naming the malformed event, %d of them the first request's warning; want one a request, the first a warning:\n%s", n, warned, logs)
	}
}

// TestHTTPInputCountsMalformedEvents: braze_currents_http_events_malformed is
// exported at 0 from start, and counts each malformed event handed over.
func TestHTTPInputCountsMalformedEvents(t *testing.T) {
	res, metricsURL := promscrape.Resources(t)
	in, url := startHTTPInputWith(t, res, "token: tok")
	promscrape.WantZero(t, promscrape.Get(t, metricsURL), []promscrape.Series{{Name: "braze_currents_http_events_malformed"}})
	answer := postAsync(http.DefaultClient, url, `{"events": [1, `+testEvent+`, {"id": "x"}]}`)
	batch, ack := readOrAnswer(t, reader(t, in), answer)
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if got, _ := promscrape.Get(t, metricsURL).Counter("braze_currents_http_events_malformed", "", ""); got != 2 {
		t.Fatalf("braze_currents_http_events_malformed = %v, want 2", got)
	}
	// The malformed events count as received too: received - mapped -
	// unmappable stays what the mapping filtered out.
	if got, _ := promscrape.Get(t, metricsURL).Counter("braze_currents_http_events_received", "", ""); got != 3 {
		t.Fatalf("braze_currents_http_events_received = %v, want 3", got)
	}
	if _, ok := batch[0].MetaGet(MetaEventType); ok {
		t.Fatal("an event with no event_type has one in its metadata")
	}
	if fmt.Sprint(batch[0].GetError()) != "event 0: a JSON number, not an object" {
		t.Fatalf("error %v", batch[0].GetError())
	}
}

// read is a batch ReadBatch returned, with its AckFunc.
type read struct {
	batch service.MessageBatch
	ack   service.AckFunc
}

// reader reads in as Connect does, with one context for the input's life:
// cancelled, it is the stream's stop (beginStop). Each batch read comes on
// the channel.
func reader(t *testing.T, in *httpInput) <-chan read {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reads := make(chan read)
	go func() {
		for {
			batch, ack, err := in.ReadBatch(ctx)
			if err != nil {
				return
			}
			select {
			case reads <- read{batch, ack}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return reads
}

// readOrAnswer reads from reads the batch of the request whose answer is
// coming on answer, failing t if the request is answered first (refused
// whole).
func readOrAnswer(t *testing.T, reads <-chan read, answer <-chan reply) (service.MessageBatch, service.AckFunc) {
	t.Helper()
	select {
	case r := <-reads:
		return r.batch, r.ack
	case r := <-answer:
		t.Fatalf("answered %d %q without handing the events over", r.status, r.body)
	}
	return nil, nil
}
