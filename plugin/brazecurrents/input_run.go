package brazecurrents

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// run makes one pass, or polls for ever in watch mode, then closes the
// batch channel once every reader is done.
func (in *currentsInput) run(ctx context.Context) {
	defer close(in.stopped)
	objects, retries := make(chan object), make(chan object)
	var readers sync.WaitGroup
	for range in.conf.parallel {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				o, retry, ok := nextObject(objects, retries)
				if !ok {
					return
				}
				if retry && !in.claimRetry(o) {
					continue
				}
				// A reader whose object was handed out before a stop reads
				// on and abandons it, which releases it; one stopped while
				// held back (the store lagging, the lease lapsed: the
				// checkpoint may be another's) releases it unread.
				if in.saver == nil || in.saver.waitSaved(ctx, uint64(in.conf.parallel)) {
					in.readObject(ctx, o)
				} else {
					(&objectRun{in: in, obj: o, started: time.Now()}).readFinished(outcomeAbandoned)
				}
				if o.notice != nil {
					in.noticeReading(-1)
				}
			}
		}()
	}
	if in.sub != nil {
		in.receive(ctx, objects)
	} else {
		in.listPasses(ctx, objects, retries)
	}
	close(objects)
	readers.Wait()
	// Before the end of input, which lets the stream stop (and the process
	// exit) as soon as no ack is pending: a summary logged after it could
	// be lost.
	if !in.conf.watch && ctx.Err() == nil {
		in.passEnded()
	}
	close(in.batches)
}

// listPasses makes one listing pass, or polls for ever in watch mode. While
// a directory fails to list, the next pass comes after a backoff instead:
// sooner than poll_interval, so that a passing failure is soon over, and in
// a one-pass run until every directory was listed.
func (in *currentsInput) listPasses(ctx context.Context, objects, retries chan<- object) {
	w := &walker{bucket: in.bucket, sel: in.conf.sel, skipHour: in.skipHour, hours: in.hoursToList, now: in.clock.Now,
		timeout: in.conf.readTimeout, reopen: in.reopen, relayout: in.relayout, unlisted: in.logUnlisted,
		watermark: in.ckpt.watermark}
	w.skipped.own = in.ownKeys()
	retryCap := time.Minute
	if in.conf.watch {
		retryCap = max(retryCap, in.conf.pollInterval)
	}
	policy := backoff.NewExponentialBackOff(backoff.WithMaxInterval(retryCap), backoff.WithMaxElapsedTime(0))
	var rounds sync.WaitGroup
	defer rounds.Wait()
	for pass := 0; ; pass++ {
		// Taken before the listing: an object that fails in it was tried
		// this pass.
		due := in.dueRetries()
		complete := in.listPass(ctx, w, objects)
		in.retryFailed(ctx, due, retries, &rounds)
		if ctx.Err() != nil || (complete && !in.conf.watch) {
			return
		}
		interval := in.conf.pollInterval
		if complete {
			policy.Reset()
		} else if next := policy.NextBackOff(); !in.conf.watch || next < interval {
			interval = next
		}
		wait := in.clock.NewTimer(interval)
		if in.conf.watch && in.afterPass != nil {
			in.afterPass(ctx, pass)
		}
		select {
		case <-wait.Chan():
		case <-ctx.Done():
			wait.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// passEnded notes that a one-pass run read everything: the run is over once
// the objects still awaiting acks are settled, and then says what it did.
func (in *currentsInput) passEnded() {
	in.mu.Lock()
	in.ended = true
	over := len(in.inFlight) == 0
	in.mu.Unlock()
	if over {
		in.summarise()
	}
}

// summarise logs the run summary, once. It is a warning so that it shows at
// every log level a run may use, the demo's included: it is one line a run,
// and it tells of events that were read and not sent.
func (in *currentsInput) summarise() {
	in.summary.Do(func() { in.log.Warnf("%s", in.stats.runSummary()) })
}

// listPass walks the bucket once and hands every new object to the readers.
// A failed listing of the prefix itself is retried with backoff; a directory
// below it that fails is left out, and the pass is not complete.
func (in *currentsInput) listPass(ctx context.Context, w *walker, objects chan<- object) (complete bool) {
	policy := backoff.NewExponentialBackOff(backoff.WithMaxInterval(time.Minute), backoff.WithMaxElapsedTime(0))
	var failing outage // the listing of the prefix, in this pass
	for {
		started := in.clock.Now()
		w.reset()
		clear(in.late.looking)
		in.noteAhead()
		// A partition listed in full settles at once, by the pass's start
		// (hour by hour, by its directory's last listing: settleBy), as the
		// walk's end would settle it.
		settle := func(partition string) {
			in.ckpt.walked([]string{partition}, w.settleBy(partition, started))
			in.lookedBack(partition, started)
		}
		w.listed = func(partition string) {
			settle(partition)
			in.saver.poke()
		}
		// And each hour of a partition as the listing passes it.
		w.listedTo = func(partition string, hour time.Time) {
			in.ckpt.walkedTo(partition, started, hour)
			in.saver.poke()
		}
		err := w.walk(ctx, in.conf.prefix, func(o object) error {
			// A failed object is tried by its key after the listing.
			late := in.ckpt.isLate(o)
			if in.ckpt.isFailed(o) || !in.claim(o) {
				return nil
			}
			if late {
				in.noteLate(o)
			}
			in.stats.objectFound()
			select {
			case objects <- o:
				return nil
			case <-ctx.Done():
				in.release(o)
				return ctx.Err()
			}
		})
		if err == nil {
			if lasted, ok := failing.ended(in.clock.Now()); ok {
				in.log.Infof("Listing %s works again, after failing for %v", bucketName(in.conf.url), lasted)
			}
			// Only a complete listing of a partition settles its hours: a
			// failed one may have missed objects in them. Those listed in
			// full settled as the walk left them; again does no harm.
			for _, partition := range w.complete() {
				settle(partition)
			}
			in.saver.poke()
			in.unlisted.endWhere(in.clock.Now(), w.relisted, func(dir string, lasted time.Duration) {
				in.log.Infof("Listing %q of %s works again, after failing for %v", dir, bucketName(in.conf.url), lasted)
			})
			in.noteSkipped(w)
			if len(w.failed) > 0 {
				return false
			}
			in.stats.listingCompleted()
			in.warnNoExport(w)
			in.warnNoneSelected(w)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		failing.failed(in.clock.Now())
		wait := policy.NextBackOff()
		in.stats.listingsFailed.Incr(1)
		in.log.Errorf("Listing %s failed, retrying in %v: %v", bucketName(in.conf.url), wait, err)
		if !sleepCtx(ctx, in.clock, wait) {
			return
		}
	}
}

// reopen takes back the hours of partition that settled while its listing
// passed them, from from on, when the bucket then lists dir, an earlier
// hour: they are read rather than dir pruned unread.
func (in *currentsInput) reopen(partition, dir string, after, from time.Time) {
	in.ckpt.reopen(partition, from)
	in.log.Errorf("Listing %s: the bucket listed %s after date=%s, not in key order as object stores list: "+
		"it is read rather than taken as done, and from now on the hours of %s settle only once it is listed in full; objects may be read twice, none is lost",
		bucketName(in.conf.url), dir, after.Format(DateHourLayout), partition)
}

// relayout takes back the hours of partition that settled while its listing
// passed them, when the listing then meets entry, another layout, which may
// hold objects of those hours: they are read rather than taken as done.
func (in *currentsInput) relayout(partition, entry string, from time.Time) {
	in.ckpt.reopen(partition, from)
	in.log.Warnf("Listing %s: %s follows the date= hours of %s, another layout, which may hold objects of those hours: "+
		"the hours settled as the listing passed them are taken back, and from now on %s settles only once it is listed in full; objects may be read twice, none is lost",
		bucketName(in.conf.url), entry, partition, partition)
}

// logUnlisted logs a directory the walk could not list, as it meets it: as
// an error when it starts failing, at debug level at each pass while it
// goes on; the pass that lists it again says so.
func (in *currentsInput) logUnlisted(f listFailure) {
	in.stats.listingsFailed.Incr(1)
	if !in.unlisted.failed(f.dir, in.clock.Now()) {
		in.log.Debugf("Listing %q of %s still fails: %v", f.dir, bucketName(in.conf.url), f.err)
		return
	}
	in.log.Errorf("Cannot list %q of %s, reading the rest without it: %v; every pass lists it again, and until one can, nothing under it is read or counted as done",
		f.dir, bucketName(in.conf.url), f.err)
}

// dueRetries are the objects that could not be read so far to try again
// after this pass's listing, each once a pass: those an earlier pass's
// retries still hold are left to them.
func (in *currentsInput) dueRetries() []object {
	in.mu.Lock()
	defer in.mu.Unlock()
	var due []object
	for _, o := range in.ckpt.retries() {
		// The selection may have changed since it failed (a restart with
		// other event types).
		if _, ok := in.conf.sel.objectAt(o.key); !ok || in.retrying[o.key] {
			continue
		}
		in.retrying[o.key] = true
		due = append(due, o)
	}
	return due
}

// retryFailed hands the due objects to the readers again, by key (the
// watermark may have passed their hours, which no listing lists again),
// without holding the pass back: readers take listed objects first, so
// however many fail, and however long their backoff, a new object waits at
// most for a reader to finish the object it has.
func (in *currentsInput) retryFailed(ctx context.Context, due []object, retries chan<- object, rounds *sync.WaitGroup) {
	if len(due) == 0 || ctx.Err() != nil {
		return
	}
	rounds.Add(1)
	go func() {
		defer rounds.Done()
		for _, o := range due {
			select {
			case retries <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// nextObject is a listed (or notified) object, which a reader takes before
// a failed one to try again; ok is false once there are no more.
func nextObject(objects, retries <-chan object) (o object, retry, ok bool) {
	select {
	case o, ok = <-objects:
		return o, false, ok
	default:
	}
	select {
	case o, ok = <-objects:
		return o, false, ok
	case o = <-retries:
		return o, true, true
	}
}

// claimRetry takes a failed object for reading again, unless it got done
// or is in flight meanwhile. Taken by a reader, it is due again next pass.
func (in *currentsInput) claimRetry(o object) bool {
	in.mu.Lock()
	delete(in.retrying, o.key)
	in.mu.Unlock()
	if !in.claim(o) {
		return false
	}
	in.stats.objectFound()
	return true
}

// hoursToList are the hours of a partition a pass lists: every hour after
// its watermark up to now, so that a poll delayed by a stall or an outage
// catches up on every hour it missed.
func (in *currentsInput) hoursToList(partition string) ([]time.Time, bool) {
	w, ok := in.ckpt.watermark(partition)
	if !ok {
		return nil, false
	}
	return in.conf.sel.hoursAfter(w, in.clock.Now())
}

// claim takes a listed object for reading unless it is done or in flight
// (a watch poll lists objects still being read).
func (in *currentsInput) claim(o object) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.inFlight[o.key] || in.ckpt.isDone(o) {
		return false
	}
	// o cannot get done in between: it has no reader yet, and a watermark
	// passes its hour only if o landed after a listing settled that hour,
	// when the watermark passes it anyway.
	in.ckpt.opened(o)
	in.inFlight[o.key] = true
	return true
}

func (in *currentsInput) release(o object) {
	in.mu.Lock()
	delete(in.inFlight, o.key)
	over := in.ended && len(in.inFlight) == 0
	in.mu.Unlock()
	if over {
		in.summarise()
	}
}
