package segment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	segjson "github.com/segmentio/encoding/json"
)

// sender holds what every batch shares: the keep-alive HTTP client, the
// retry policy, the dispatchers (one per write key) and the metrics.
type sender struct {
	client           *http.Client // through a proxy
	wire             *wireClient  // without one
	batchURL         string       // the endpoint's /v1/batch (batchURL)
	where            string       // the endpoint and region, for messages
	maxCalls         int
	requestTimeout   time.Duration
	maxRetries       int
	unreachableAfter time.Duration
	backoff          *backoff.ExponentialBackOff
	dryRun           *dryRunWriter
	scrub            scrubber
	log              *service.Logger
	metrics          metrics
	clock            clockwork.Clock // decides how long Segment has been failing; fake in tests
	routes           *router
	closing          context.Context // cancelled when the output closes: requests and retries stop
}

func (s *sender) newBackOff() backoff.BackOff {
	b := *s.backoff
	b.Reset()
	return &b
}

// encoding is how calls are encoded: keys in map order on the wire (JSON
// objects have none; sorting them was a fifth of the output's CPU), sorted
// in dry runs, so that their bodies compare from run to run.
func (s *sender) encoding() segjson.AppendFlags {
	if s.dryRun != nil {
		return segjson.EscapeHTML | segjson.SortMapKeys
	}
	return segjson.EscapeHTML
}

// send delivers one batch: its calls join every other batch's in the
// dispatcher's requests, and send returns once each has an outcome. Only the
// calls that failed are reported, one by one, so only they are retried or
// routed; while Segment is down or refuses the key the batch goes back as
// not connected, held in the pipeline.
func (s *sender) send(ctx context.Context, batch service.MessageBatch) error {
	s.metrics.batches.Incr(1)
	wait := newBatchWait(len(batch))
	refs := make([]callRef, len(batch)) // one allocation for the batch's calls
	// The calls of each write key, in the order of s.routes.all.
	byKey := make([][]*callRef, len(s.routes.all))
	pending := 0
	// The calls' JSON, one after the other, in a buffer recycled from batch
	// to batch (appends grow it).
	recycled := arenas.Get().(*[]byte)
	arena := (*recycled)[:0]
	flags := s.encoding()
	for i, msg := range batch {
		var wire []byte
		var err error
		wire, arena, err = messageCall(msg, arena, flags)
		var d *dispatcher
		if err == nil {
			d, err = s.routes.pick(msg)
		}
		if err != nil {
			wait.errs[i] = err
			continue
		}
		refs[i] = callRef{wire: wire, wait: wait, index: i}
		k := slices.Index(s.routes.all, d)
		if byKey[k] == nil {
			byKey[k] = make([]*callRef, 0, len(batch)-i)
		}
		byKey[k] = append(byKey[k], &refs[i])
		pending++
	}
	wait.pending = pending
	if pending == 0 {
		close(wait.done)
	}
	for k, calls := range byKey {
		if len(calls) > 0 {
			s.routes.all[k].submit(calls)
		}
	}
	select {
	case <-wait.done:
		// Every call has its outcome: no request refers to the JSON now.
		if cap(arena) <= maxRecycledArena {
			*recycled = arena[:0]
			arenas.Put(recycled)
		}
	case <-ctx.Done():
		return ctx.Err() // calls may still be queued: their JSON is not recycled
	}
	return s.outcome(batch, wait.errs)
}

// outcome turns the calls' errors into WriteBatch's answer.
func (s *sender) outcome(batch service.MessageBatch, errs []error) error {
	for _, err := range errs {
		if err == nil {
			continue // most calls: errors.As would allocate for each
		}
		var ce *CallError
		if errors.As(err, &ce) && (ce.Cause == CauseUnreachable || ce.Cause == CauseUnauthorized) {
			return service.ErrNotConnected // the whole batch waits, and is written again
		}
	}
	var batchErr *service.BatchError
	failures := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		var ce *CallError
		errors.As(err, &ce)
		cause := CauseTransient
		if ce != nil {
			cause = ce.Cause
		}
		s.metrics.failed.Incr(1, cause)
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

// bloblangWrappers are the prefixes Bloblang puts before a mapping's own
// error at each level of assignment: the reason alone is what a reader needs.
var bloblangWrappers = regexp.MustCompile(`^(failed assignment \(line \d+\): |failed to resolve '[^']*' value: )+`)

// messageCall reads and checks the call a message carries (as it is when a
// mapping left it structured, else from its bytes) and returns its wire
// JSON: the message's own bytes, or encoded at the end of arena, which it
// returns grown. A message a processor failed on (say, an unmappable event)
// is not a call: it fails here, for the dead letter output.
func messageCall(msg *service.Message, arena []byte, flags segjson.AppendFlags) (wire, grown []byte, err error) {
	if upstream := msg.GetError(); upstream != nil {
		reason := bloblangWrappers.ReplaceAllString(upstream.Error(), "")
		return nil, arena, &CallError{Cause: CauseInvalid, Permanent: true, Detail: "the message failed before the output: " + reason}
	}
	start := len(arena)
	var c wireCall
	if msg.HasStructured() {
		var v any
		if v, err = msg.AsStructured(); err == nil {
			c, arena, err = structuredCall(v, msg.AsBytes, arena, flags)
			wire = arena[start:len(arena):len(arena)]
		}
	} else {
		var body []byte
		if body, err = msg.AsBytes(); err == nil {
			c, wire, err = parseCall(body)
		}
	}
	if err != nil {
		return nil, arena[:start], &CallError{Cause: CauseInvalid, Permanent: true, Detail: err.Error()}
	}
	if len(wire) > maxCallBytes {
		// Named by its messageId, which a mapping derives from the event.
		return nil, arena[:start], &CallError{Cause: CauseTooLarge, Permanent: true, Detail: fmt.Sprintf(
			"%s is %d bytes, over Segment's 32 KB limit (%d bytes)", callName(c.Type, c.MessageID), len(wire), maxCallBytes)}
	}
	return wire, arena, nil
}

// maxCallBytes is Segment's limit on one call.
const maxCallBytes = 32 << 10

// arenas recycles the buffers that hold a batch's calls' JSON: a batch of
// 100 calls needs about 70 KB, and allocating it per batch was a share of
// the output's garbage.
var arenas = sync.Pool{New: func() any { return new([]byte) }}

// maxRecycledArena keeps the buffer of a batch of unusually large calls
// out of the pool, so that the pool does not hold on to it.
const maxRecycledArena = 4 << 20

// bodies recycles request bodies: each is up to 500 KB, and allocating one
// per request was a large share of the output's garbage.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// requestBody appends the /v1/batch body of calls to body.
func (s *sender) requestBody(body []byte, calls []*callRef) []byte {
	body = append(body, `{"batch":[`...)
	for i, c := range calls {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, c.wire...)
	}
	// A request id, as analytics-go sends: it names the request in Segment's
	// debugger; retries of the same body keep it.
	var id [16]byte
	_, _ = rand.Read(id[:])
	body = append(body, `],"messageId":"`...)
	body = hex.AppendEncode(body, id[:])
	body = append(body, `","sentAt":"`...)
	body = append(body, sentAtLayout[:sentAtWidth]...) // room for stampSentAt
	body = append(body, `"}`...)
	stampSentAt(body, s.clock.Now())
	return body
}

// sentAtLayout writes sentAt in a fixed width (sentAtWidth bytes, in UTC),
// so that each attempt can restamp a body in place, at its end.
const (
	sentAtLayout = "2006-01-02T15:04:05.000Z07:00"
	sentAtWidth  = len("2006-01-02T15:04:05.000Z")
)

// stampSentAt sets the sentAt of a body built by requestBody to now. Segment
// takes sentAt as the moment of sending and moves every call's timestamp by
// the gap between it and its own clock (receivedAt − sentAt), so a retry
// must carry its own time: the first attempt's would shift the events by
// however long the retries took.
func stampSentAt(body []byte, now time.Time) {
	var at [len(sentAtLayout)]byte
	stamp := now.UTC().AppendFormat(at[:0], sentAtLayout)
	if len(stamp) == sentAtWidth { // always, for years 1000–9999
		copy(body[len(body)-len(`"}`)-sentAtWidth:], stamp)
	}
}
