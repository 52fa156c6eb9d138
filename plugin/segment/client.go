package segment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/segmentio/analytics-go/v3"
)

// sender holds what every batch shares: the keep-alive HTTP client, the
// retry policy and the metrics.
type sender struct {
	client         *http.Client
	endpoint       string
	authorization  string
	maxCalls       int
	requestTimeout time.Duration
	maxRetries     int
	backoff        *backoff.ExponentialBackOff
	dryRun         *dryRunWriter
	scrub          scrubber
	reachable      atomic.Bool // false after Segment stopped answering, until a probe gets an answer
	log            *service.Logger
	metrics        metrics
}

func (s *sender) newBackOff() backoff.BackOff {
	b := *s.backoff
	b.Reset()
	return &b
}

// send delivers one batch through an analytics-go client of its own: the
// client is closed before send returns, which flushes every call and waits
// for every request, so results come back synchronously and no Enqueue can
// race a Close. Requests go through a batchTransport on the shared
// keep-alive connections.
func (s *sender) send(ctx context.Context, batch service.MessageBatch) error {
	s.metrics.batches.Incr(1)
	results := newResults(len(batch))
	transport := newBatchTransport(ctx, s)
	client, err := analytics.NewWithConfig("", analytics.Config{
		Endpoint:   s.endpoint,
		Interval:   time.Hour, // Close flushes; no timer needed
		BatchSize:  s.maxCalls,
		Transport:  transport,
		Callback:   results,
		Logger:     quietLogger{s.log, s.scrub},
		RetryAfter: func(int) time.Duration { return 0 }, // the transport did the waiting
	})
	if err != nil {
		return err
	}
	for i, msg := range batch {
		if upstream := msg.GetError(); upstream != nil {
			// A message a processor failed on (say, an unmappable event) is
			// not a call: it fails here, for the dead letter output.
			results.fail(i, &CallError{Cause: CauseInvalid, Permanent: true, Detail: "the message failed before the output: " + upstream.Error()})
			continue
		}
		call, err := messageCall(msg)
		if err != nil {
			results.fail(i, &CallError{Cause: CauseInvalid, Permanent: true, Detail: err.Error()})
			continue
		}
		results.expect(i, messageID(call))
		if err := client.Enqueue(call); err != nil {
			results.fail(i, &CallError{Cause: CauseInvalid, Permanent: true, Detail: err.Error()})
		}
	}
	_ = client.Close()

	outcomes := results.outcomes(transport)
	for _, err := range outcomes {
		var ce *CallError
		if errors.As(err, &ce) && ce.Cause == CauseUnreachable {
			// Segment is down: hand the whole batch back as not connected, so
			// Connect marks the output down and retries it once Segment answers.
			s.reachable.Store(false)
			s.log.Warnf("Segment is unreachable, waiting for it: %v", err)
			return service.ErrNotConnected
		}
	}
	var batchErr *service.BatchError
	failures := 0
	for i, err := range outcomes {
		if err == nil {
			continue
		}
		var ce *CallError
		if errors.As(err, &ce) {
			s.metrics.failed.Incr(1, ce.Cause)
		} else {
			s.metrics.failed.Incr(1, CauseTransient)
		}
		if batchErr == nil {
			batchErr = service.NewBatchError(batch, err)
		}
		batchErr.Failed(i, err)
		failures++
	}
	s.metrics.sent.Incr(int64(len(batch) - failures))
	if batchErr != nil {
		return batchErr
	}
	return nil
}

// results collects analytics-go's callbacks for one batch. Callbacks carry
// the message, not its index, so indexes are found by messageId; a batch may
// hold the same call twice (Currents delivers at least once), hence a queue.
type results struct {
	mu      sync.Mutex
	ids     []string         // messageId of each enqueued call
	waiting map[string][]int // unsettled indexes by messageId
	errs    []error
	settled []bool
}

func newResults(n int) *results {
	return &results{ids: make([]string, n), waiting: map[string][]int{}, errs: make([]error, n), settled: make([]bool, n)}
}

func (r *results) expect(i int, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[i] = id
	r.waiting[id] = append(r.waiting[id], i)
}

func (r *results) fail(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[i], r.settled[i] = err, true
}

func (r *results) settle(m analytics.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := messageID(m)
	for n, i := range r.waiting[id] {
		if !r.settled[i] {
			r.errs[i], r.settled[i] = err, true
			r.waiting[id] = append(r.waiting[id][:n:n], r.waiting[id][n+1:]...)
			return
		}
	}
}

// Success and Failure implement analytics.Callback.
func (r *results) Success(m analytics.Message) { r.settle(m, nil) }

func (r *results) Failure(m analytics.Message, err error) {
	if errors.Is(err, analytics.ErrMessageTooBig) {
		err = &CallError{Cause: CauseTooLarge, Permanent: true, Detail: "the call is over Segment's 32 KB limit"}
	} else if !errors.As(err, new(*CallError)) {
		err = &CallError{Cause: CauseTransient, Detail: err.Error()}
	}
	r.settle(m, err)
}

// outcomes is every call's final error (nil when accepted). A call that
// analytics-go never reported back counts as failed, and so does one that
// failed inside a split request: nothing is acked unsent.
func (r *results) outcomes(t *batchTransport) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, id := range r.ids {
		switch {
		case id == "":
		case !r.settled[i]:
			r.errs[i] = &CallError{Cause: CauseTransient, Detail: "analytics-go did not report the call " + id}
		case r.errs[i] == nil:
			if ce := t.failedCall(id); ce != nil {
				r.errs[i] = ce
			}
		}
	}
	return r.errs
}

// quietLogger sends analytics-go's logs to debug level: it logs whole calls
// (personal data) and failures we report ourselves.
type quietLogger struct {
	log   *service.Logger
	scrub scrubber
}

func (q quietLogger) Logf(format string, args ...any) {
	q.log.Debug(q.scrub.clean(fmt.Sprintf(format, args...)))
}

func (q quietLogger) Errorf(format string, args ...any) {
	q.log.Debug(q.scrub.clean(fmt.Sprintf(format, args...)))
}

// messageCall reads the call a message carries: as it is when a mapping left
// it structured (no encoding to JSON and parsing back), else from its bytes.
func messageCall(msg *service.Message) (analytics.Message, error) {
	if msg.HasStructured() {
		v, err := msg.AsStructured()
		if err != nil {
			return nil, err
		}
		return structuredCall(v, msg.AsBytes)
	}
	body, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	return parseCall(body)
}

// probe asks Segment for an answer with an empty batch, which it accepts
// and ignores: any answer from its API (2xx or 4xx) means it is reachable.
func (s *sender) probe(ctx context.Context) error {
	res := s.post(ctx, []byte(`{"batch":[]}`))
	if res.err == nil && !gatewayDown(res.status) && res.status < 500 {
		s.reachable.Store(true)
		return nil
	}
	if res.err != nil {
		return fmt.Errorf("segment at %s is unreachable: %s", s.endpoint, res.detail)
	}
	return fmt.Errorf("segment at %s is unreachable: HTTP %d %s", s.endpoint, res.status, res.detail)
}
