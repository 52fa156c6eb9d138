package brazecurrents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/gcerrors"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

// objectRun follows one object from its first read to its last ack.
type objectRun struct {
	in      *currentsInput
	obj     object
	started time.Time

	mu       sync.Mutex
	pending  int // batches handed out and not yet acked
	events   int64
	readDone bool // no more batches will come
	outcome  string
	nacked   bool
	// sendBackIn is how long the notification of an object unreadable
	// after every attempt is held before it is sent back (0: at once).
	sendBackIn time.Duration
	// The object's size and modification time as the last attempt found
	// them (readAttempt only).
	seen     bool
	size     int64
	modified time.Time
}

// replaced notes the size and modification time an attempt found, and
// says whether they differ from the last attempt's: the object was written
// again between them.
func (r *objectRun) replaced(size int64, modified time.Time) bool {
	was := r.seen && (size != r.size || !modified.Equal(r.modified))
	r.seen, r.size, r.modified = true, size, modified
	return was
}

// Outcomes of reading an object.
const (
	outcomeDone      = "done"
	outcomeCorrupt   = "corrupt"   // done, with the events before the damage
	outcomeGone      = "gone"      // deleted while we read it
	outcomeAbandoned = "abandoned" // left for the next pass
)

func (in *currentsInput) readObject(ctx context.Context, o object) {
	run := &objectRun{in: in, obj: o, started: time.Now()}
	// 1, 1.5, 2.25, 3.4 s (±50 %): about 8 s over the default 5 attempts.
	// On the input's clock, as the waits below are: tests follow the schedule.
	// read_attempts alone ends the retries: past a MaxElapsedTime the policy
	// would give Stop (-1), a retry at once.
	policy := backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second), backoff.WithMultiplier(1.5),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0), backoff.WithClockProvider(in.clock))
	var emitted int64
	outcome := outcomeDone
	for attempt := 1; ; attempt++ {
		err := bucketurl.Redact(in.readAttempt(ctx, run, &emitted))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			outcome = outcomeAbandoned
			break
		}
		if errors.Is(err, errUnwritten) {
			// Reading it again now cannot help either: the next pass (or
			// delivery) does, once it is written.
			run.sendBackIn = in.logUnread(o.key, attempt, err)
			outcome = outcomeAbandoned
			break
		}
		if errors.Is(err, ErrCorrupt) {
			// Objects are immutable: reading it again cannot help, so it is done.
			in.log.Errorf("Skipping corrupt object %q after its first %d records, recorded as done (objects are immutable, reading it again cannot help)%s: %v", o.key, emitted, in.keptCorrupt(), err)
			outcome = outcomeCorrupt
			break
		}
		if gcerrors.Code(err) == gcerrors.NotFound {
			in.log.Warnf("Object %q disappeared before it was read: %v", o.key, err)
			outcome = outcomeGone
			break
		}
		if attempt >= in.conf.readAttempts {
			run.sendBackIn = in.logUnread(o.key, attempt, err)
			outcome = outcomeAbandoned
			break
		}
		wait := policy.NextBackOff()
		logf := in.log.Warnf
		if in.unreadable.failing(o.key, in.clock.Now()) { // said at error when it started failing
			logf = in.log.Debugf
		}
		logf("Reading object %q failed (attempt %d of %d), retrying in %v from event %d: %v", o.key, attempt, in.conf.readAttempts, wait, emitted, err)
		if !in.retryAfter(ctx, o.key, wait) {
			outcome = outcomeAbandoned
			break
		}
	}
	run.readFinished(outcome)
}

// retryAfter waits out wait on the input's clock before key is read again,
// false if ctx ends first (the input stops).
func (in *currentsInput) retryAfter(ctx context.Context, key string, wait time.Duration) bool {
	timer := in.clock.NewTimer(wait)
	defer timer.Stop()
	if in.readRetrying != nil {
		in.readRetrying(key, wait)
	}
	select {
	case <-timer.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}

// logUnread logs an object left for the next pass after its last attempt
// (with notifications, sent back to the queue): as an error when it starts
// failing, at debug level at each pass or delivery while it goes on (every
// pass tries it again: with watch that is a line a poll_interval, for as
// long as it fails), and at info once it is read. With notifications it
// returns how long the notification is held before it is sent back.
func (in *currentsInput) logUnread(key string, attempts int, err error) time.Duration {
	now := in.clock.Now()
	first := in.unreadable.failed(key, now)
	if in.conf.notifications != "" {
		// There is no pass: the queue delivers the notification again once
		// it is sent back, and a queue with a dead-letter limit counts each
		// delivery, hence the delay.
		queue := bucketName(in.conf.notifications)
		failingFor, _ := in.unreadable.lasting(key, now)
		delay := sendBackDelay(failingFor)
		if !first {
			in.log.Debugf("Object %q still cannot be read (%d attempts, failing for %v), sending its notification back to %s in %v: %v",
				key, attempts, failingFor.Round(time.Second), queue, delay, err)
			return delay
		}
		in.log.Errorf("Could not read object %q after %d attempts, sending its notification back to %s in %v: %v; while it keeps failing, each delivery is sent back after twice as long as the object has been failing, %v to %v, so that a queue with a dead-letter limit (Service Bus's MaxDeliveryCount, 10 by default; an SQS redrive policy; a Pub/Sub dead-letter policy; a NATS consumer's max_deliver) moves it to its dead-letter queue, unread, only after that many deliveries (10 take about 85 minutes, then 4 an hour); logging at debug level until it is read",
			key, attempts, queue, delay, err, minSendBackDelay, maxSendBackDelay)
		return delay
	}
	if !first {
		in.log.Debugf("Object %q still cannot be read (%d attempts), leaving it for the next pass: %v", key, attempts, err)
		return 0
	}
	in.log.Errorf("Could not read object %q after %d attempts, leaving it for the next pass: %v; every pass tries it again, logging at debug level until it is read",
		key, attempts, err)
	return 0
}

// emptyGrace is how long an empty object is taken for a file still being
// written. Currents files are never empty, but on a storage account with a
// hierarchical namespace Data Lake's CreateFile makes a file visible, empty,
// until FlushWithClose writes it at the same key: recorded as done, its
// events were never read. A watch reads it again at its next pass; one empty
// for longer, or met by a one-pass run, is skipped as done (the scanner
// warns), so that it does not hold its hour open. A notification names a
// file once written (CreateFile's are skipped): an empty one is junk, done.
const emptyGrace = time.Hour

// errUnwritten is an empty object modified within emptyGrace.
var errUnwritten = fmt.Errorf("empty object modified within %v: taken for a file still being written, read again later", emptyGrace)

// readAttempt reads the object from the start, emitting only the events
// after the emitted first records, which an earlier attempt delivered (or
// rejected as oversize).
func (in *currentsInput) readAttempt(ctx context.Context, run *objectRun, emitted *int64) error {
	o := run.obj
	guard, readCtx, stop := newStallGuard(ctx, in.clock, in.conf.readTimeout)
	defer stop()
	guard.arm()
	r, err := in.bucket.NewReader(readCtx, o.key, nil)
	guard.disarm()
	if err != nil {
		return stalledErr(readCtx, err)
	}
	if o.modTime.IsZero() { // named by a notification, not listed
		o.size, o.modTime = r.Size(), r.ModTime()
	}
	if size, modified := run.size, run.modified; run.replaced(r.Size(), r.ModTime()) && *emitted > 0 {
		// Skipping the records an earlier attempt delivered would skip
		// those of the new content, never sent.
		in.log.Warnf("Object %q was written again between reads (%d bytes modified %v, then %d bytes modified %v): reading it from its start, its first %d events may come twice",
			o.key, size, modified.UTC(), r.Size(), r.ModTime().UTC(), *emitted)
		*emitted = 0
	}
	if r.Size() == 0 && in.conf.watch && in.sub == nil && in.clock.Since(r.ModTime()) < emptyGrace {
		_ = r.Close()
		return errUnwritten
	}
	s := in.scan.newEventScanner(guard.reader(r), o.key, *emitted, map[string]any{
		MetaBucket:     bucketName(in.conf.url),
		MetaKey:        o.key,
		MetaObjectSize: o.size,
		MetaModTime:    o.modTime.UTC().Format(time.RFC3339),
	})
	s.rejected = in.stats.rejected
	defer s.Close(ctx)
	for {
		batch, err := s.NextBatch(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// Every record before s.next was handed over or rejected as too
			// large: a retry starts after them, and reports none again.
			*emitted = max(*emitted, s.next)
			return stalledErr(readCtx, err)
		}
		// Counted before the pipeline has the batch, which may change it.
		n := len(batch)
		anonymous, noUser := withoutExternalUserID(batch)
		run.handedOut(n)
		ack := func(_ context.Context, err error) error {
			in.stats.eventsSettled(n, err)
			run.settle(err)
			return nil
		}
		select {
		case in.batches <- readBatch{batch: batch, ack: ack}:
			*emitted = s.next
			in.stats.eventsRead(n, anonymous, noUser, o.eventType)
		case <-ctx.Done():
			run.returned()
			return ctx.Err()
		}
	}
}

func (r *objectRun) handedOut(events int) {
	r.mu.Lock()
	r.pending++
	r.events += int64(events)
	r.mu.Unlock()
}

func (r *objectRun) returned() { r.settle(nil) }

func (r *objectRun) settle(err error) {
	r.mu.Lock()
	r.pending--
	if err != nil {
		r.nacked = true
	}
	finished := r.readDone && r.pending == 0
	r.mu.Unlock()
	if finished {
		r.complete()
	}
}

func (r *objectRun) readFinished(outcome string) {
	r.mu.Lock()
	r.readDone, r.outcome = true, outcome
	finished := r.pending == 0
	r.mu.Unlock()
	if finished {
		r.complete()
	}
}

// complete runs once, when the object was read to its end and every batch
// from it was acked (or nacked, at shutdown).
func (r *objectRun) complete() {
	in, o := r.in, r.obj
	outcome := r.outcome
	if r.nacked {
		outcome = outcomeAbandoned
	}
	if in.objectSettled != nil {
		defer in.objectSettled(o.key, outcome)
	}
	// Gone can never become readable: its notifications are acknowledged
	// like done. Those of an object unreadable after every attempt are held
	// a while before they go back (input_notify_delay.go).
	if outcome == outcomeAbandoned && r.sendBackIn > 0 && o.notice != nil {
		defer in.holdBack(o, r.sendBackIn)
	} else {
		defer in.endRead(o, outcome != outcomeAbandoned)
	}
	if outcome != outcomeAbandoned {
		if lasted, ok := in.unreadable.ended(o.key, in.clock.Now()); ok && outcome != outcomeGone {
			in.log.Infof("Object %q was read at last, after failing for %v", o.key, lasted)
		}
	}
	switch outcome {
	case outcomeDone, outcomeCorrupt:
		if outcome == outcomeDone { // a corrupt object holds events never sent
			in.afterDone(o)
		}
		if in.ckpt != nil {
			in.ckpt.finished(o)
			in.saver.poke()
		}
		in.stats.objectDone(o.hour, r.events, outcome == outcomeCorrupt, in.clock.Now())
		in.log.Infof("Object %s: %q, %d events in %v", outcome, o.key, r.events, time.Since(r.started).Round(time.Millisecond))
	case outcomeGone:
		if in.ckpt != nil {
			in.ckpt.forget(o)
		}
	case outcomeAbandoned:
		if in.ckpt != nil {
			in.ckpt.failedRead(o)
			in.saver.poke()
		}
		in.stats.objectAbandoned()
	}
}

// The fields' keys as the decoder writes them, with no space before the
// value. Quotes inside strings are escaped, so no value matches.
var (
	externalUserID = []byte(`"external_user_id":`)
	userID         = []byte(`"user_id":`)
)

// withoutExternalUserID counts the events of batch with no
// external_user_id (absent, null or empty, as the mapping tells them), which
// the mapping skips unless include_anonymous, and of those, the events with
// no user_id either (no user at all), which it skips in any case: a map
// lookup per structured event, two for those; in JSON text, a search that
// stops at the field, which Currents schemas put near the start.
func withoutExternalUserID(batch service.MessageBatch) (anonymous, noUser int) {
	for _, m := range batch {
		if m.GetError() != nil { // an oversize record, sent on without its content
			continue
		}
		if m.HasStructured() {
			v, _ := m.AsStructured()
			ev, _ := v.(map[string]any)
			if id := ev["external_user_id"]; id == nil || id == "" {
				anonymous++
				if id := ev["user_id"]; id == nil || id == "" {
					noUser++
				}
			}
			continue
		}
		b, _ := m.AsBytes()
		if emptyField(b, externalUserID) {
			anonymous++
			if emptyField(b, userID) {
				noUser++
			}
		}
	}
	return anonymous, noUser
}

// emptyField says whether the field of key in the JSON text b is absent,
// null or "".
func emptyField(b, key []byte) bool {
	i := bytes.Index(b, key) + len(key)
	return i < len(key) || i >= len(b) || b[i] == 'n' || bytes.HasPrefix(b[i:], []byte(`""`))
}

// keptCorrupt tells, where done objects are deleted or moved, that a corrupt
// one is not: the events after its damage were never sent, and it is all
// that holds them.
func (in *currentsInput) keptCorrupt() string {
	var not string
	switch {
	case in.conf.moveTo != "":
		not = "moved (" + inFieldMoveTo + ")"
	case in.conf.deleteDone:
		not = "deleted (" + inFieldDelete + ")"
	default:
		return ""
	}
	return "; kept at that key for an operator, not " + not + ", as the events after the damage were not sent"
}

// afterDone deletes or moves a done object when configured to. Failures are
// logged, not fatal: the events were delivered.
func (in *currentsInput) afterDone(o object) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if in.conf.moveTo != "" {
		dst := path.Join(in.conf.moveTo, strings.TrimPrefix(o.key, in.conf.prefix))
		if err := in.bucket.Copy(ctx, dst, o.key, nil); err != nil {
			in.log.Errorf("Could not move done object %q to %q: %v", o.key, dst, bucketurl.Redact(err))
			return
		}
	}
	if in.conf.moveTo != "" || in.conf.deleteDone {
		if err := in.bucket.Delete(ctx, o.key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			in.log.Errorf("Could not delete done object %q: %v", o.key, bucketurl.Redact(err))
		}
	}
}
