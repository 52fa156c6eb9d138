package segment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// maxRetryAfter caps how long a Retry-After answer may hold a request.
const maxRetryAfter = 10 * time.Minute

// batchTransport is the http.RoundTripper of the analytics-go client that
// carries one WriteBatch. analytics-go retries every failed upload ten times,
// whatever the status, ignoring Retry-After; so this transport applies our
// policy itself (retry only transient failures, with backoff that honours
// Retry-After; split batches Segment rejects to find the calls at fault) and
// answers analytics-go with the final outcome, remembered per request body,
// so that analytics-go's own retries of a failed upload cost nothing.
type batchTransport struct {
	s   *sender
	ctx context.Context

	mu     sync.Mutex
	seed   maphash.Seed
	final  map[bodyKey]error     // request body -> outcome already reported
	failed map[string]*CallError // messageId -> error, for calls that failed inside split requests
}

// bodyKey identifies a request body among the few one batch sends: a
// collision needs two bodies of one length with the same 64-bit seeded hash.
type bodyKey struct {
	length int
	hash   uint64
}

func newBatchTransport(ctx context.Context, s *sender) *batchTransport {
	return &batchTransport{s: s, ctx: ctx, seed: maphash.MakeSeed(), final: map[bodyKey]error{}, failed: map[string]*CallError{}}
}

func (t *batchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	key := bodyKey{len(body), maphash.Bytes(t.seed, body)}
	t.mu.Lock()
	prior, seen := t.final[key]
	t.mu.Unlock()
	if seen {
		return nil, prior
	}
	if err := t.deliver(body); err != nil {
		t.mu.Lock()
		t.final[key] = err
		t.mu.Unlock()
		return nil, err
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, ContentLength: 0, Request: req,
	}, nil
}

// readBody reads a request body in one allocation when its length is known
// (analytics-go's always is).
func readBody(req *http.Request) ([]byte, error) {
	defer req.Body.Close()
	if req.ContentLength <= 0 {
		return io.ReadAll(req.Body)
	}
	body := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(req.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// failedCall is the error recorded for a call that failed inside a split
// request, or nil.
func (t *batchTransport) failedCall(messageID string) *CallError {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed[messageID]
}

// deliver sends one batch body until Segment accepts it, it fails for good,
// or the retry budget runs out.
func (t *batchTransport) deliver(body []byte) error {
	if t.s.dryRun != nil {
		return t.s.dryRun.write(body)
	}
	policy := t.s.newBackOff()
	down := 0 // attempts in a row that got no answer from Segment's API
	for attempt := 0; ; attempt++ {
		res := t.s.post(t.ctx, body)
		if res.err == nil {
			ok, transient := statusClass(res.status)
			if ok {
				return nil
			}
			if !transient {
				if splittable(res.status) {
					if halves, ids, ok := splitBatch(body); ok {
						return t.deliverParts(halves, ids)
					}
				}
				return &CallError{Cause: CauseRejected, Status: res.status, Permanent: true, Detail: res.detail}
			}
		}
		if t.ctx.Err() != nil {
			return &CallError{Cause: CauseShutdown, Detail: "the output closed before Segment accepted the calls"}
		}
		failure := &CallError{Cause: CauseTransient, Status: res.status, Detail: res.detail}
		if res.err != nil || gatewayDown(res.status) {
			if down++; down >= unreachableAfter {
				failure.Cause = CauseUnreachable
				failure.Detail += fmt.Sprintf(" (no answer from Segment %d times in a row)", down)
				return failure
			}
		} else {
			down = 0
		}
		wait := policy.NextBackOff()
		if wait == backoff.Stop || (t.s.maxRetries > 0 && attempt >= t.s.maxRetries) {
			failure.Detail += fmt.Sprintf(" (gave up after %d attempts)", attempt+1)
			return failure
		}
		if res.retryAfter > wait {
			wait = min(res.retryAfter, maxRetryAfter)
		}
		t.s.metrics.retries.Incr(1)
		t.s.log.Debugf("Segment request failed (%v), retrying in %v", failure, wait)
		select {
		case <-time.After(wait):
		case <-t.ctx.Done():
			return &CallError{Cause: CauseShutdown, Detail: "the output closed while waiting to retry: " + failure.Error()}
		}
	}
}

// deliverParts sends the halves of a rejected batch. Calls in a half that
// fails for good are recorded as failed; a transient failure fails the whole
// request, whose calls are then all redelivered (Segment deduplicates them).
func (t *batchTransport) deliverParts(parts [][]byte, ids [][]string) error {
	for i, part := range parts {
		err := t.deliver(part)
		if err == nil {
			continue
		}
		if !IsPermanent(err) {
			return err
		}
		ce := err.(*CallError)
		t.mu.Lock()
		for _, id := range ids[i] {
			t.failed[id] = ce
		}
		t.mu.Unlock()
	}
	return nil
}

// splitBatch cuts a /v1/batch body in two, keeping its envelope, and says
// which messageIds each half holds.
func splitBatch(body []byte) ([][]byte, [][]string, bool) {
	var envelope map[string]json.RawMessage
	if json.Unmarshal(body, &envelope) != nil {
		return nil, nil, false
	}
	var calls []json.RawMessage
	if json.Unmarshal(envelope["batch"], &calls) != nil || len(calls) < 2 {
		return nil, nil, false
	}
	var parts [][]byte
	var ids [][]string
	for _, half := range [][]json.RawMessage{calls[:len(calls)/2], calls[len(calls)/2:]} {
		raw, _ := json.Marshal(half)
		envelope["batch"] = raw
		part, _ := json.Marshal(envelope)
		parts = append(parts, part)
		var partIDs []string
		for _, c := range half {
			var id struct {
				MessageID string `json:"messageId"`
			}
			_ = json.Unmarshal(c, &id)
			partIDs = append(partIDs, id.MessageID)
		}
		ids = append(ids, partIDs)
	}
	return parts, ids, true
}

// postResult is one HTTP exchange with Segment.
type postResult struct {
	status     int
	retryAfter time.Duration
	detail     string
	err        error
}

// post sends one request. It always drains and closes the response body, so
// that keep-alive connections are reused instead of opened per request.
func (s *sender) post(ctx context.Context, body []byte) postResult {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return postResult{err: err, detail: s.scrub.clean(err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", s.authorization)
	req.Header.Set("User-Agent", userAgent)
	start := time.Now()
	res, err := s.client.Do(req)
	s.metrics.latency.Timing(time.Since(start).Nanoseconds())
	if err != nil {
		s.metrics.requests.Incr(1, "error")
		return postResult{err: err, detail: s.scrub.clean(err.Error())}
	}
	defer res.Body.Close()
	s.metrics.requests.Incr(1, strconv.Itoa(res.StatusCode))
	var detail []byte
	if res.StatusCode >= 300 {
		detail, _ = io.ReadAll(io.LimitReader(res.Body, 1024))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	return postResult{
		status:     res.StatusCode,
		retryAfter: parseRetryAfter(res.Header.Get("Retry-After"), time.Now()),
		detail:     s.scrub.clean(string(bytes.TrimSpace(detail))),
	}
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// dryRunWriter writes each request body it is given as one line.
type dryRunWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (d *dryRunWriter) write(body []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.w.Write(append(body, '\n')); err != nil {
		return &CallError{Cause: CauseTransient, Detail: "dry run: " + err.Error()}
	}
	return nil
}
