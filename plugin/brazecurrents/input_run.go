package brazecurrents

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// currentsInput runs a lister that feeds objects to a pool of readers; the
// readers decode objects into batches that ReadBatch hands to the pipeline.
type currentsInput struct {
	conf    inputConfig
	mgr     *service.Resources
	log     *service.Logger
	metrics inputMetrics
	scan    *scannerCreator
	clock   clockwork.Clock // decides which hours are closed; fake in tests
	owner   ownerStamp      // this process, in the checkpoint's lease
	// afterPass, when set, is called after each listing pass, once the wait
	// for the next one has started (tests drive polls with a fake clock).
	afterPass func(ctx context.Context, pass int)

	bucket  *blob.Bucket
	ckpt    *checkpoint
	saver   *checkpointSaver
	batches chan readBatch
	stop    context.CancelFunc
	stopped chan struct{}

	mu         sync.Mutex
	inFlight   map[string]bool // objects being read or awaiting acks
	newestDone time.Time       // the newest queue hour with a done object
	progress   progress
}

type readBatch struct {
	batch service.MessageBatch
	ack   service.AckFunc
}

func newCurrentsInput(c inputConfig, mgr *service.Resources) *currentsInput {
	in := &currentsInput{
		conf:     c,
		mgr:      mgr,
		log:      mgr.Logger(),
		metrics:  newInputMetrics(mgr.Metrics()),
		scan:     &scannerCreator{batchSize: c.batchSize, structured: c.structured, log: mgr.Logger(), programs: newProgramCache()},
		inFlight: map[string]bool{},
		clock:    clockwork.NewRealClock(),
		owner:    newOwner(),
	}
	return in
}

func (in *currentsInput) Connect(ctx context.Context) error {
	if in.bucket != nil {
		return nil
	}
	bucket, err := openChecked(ctx, in.conf.url, in.conf.prefix)
	if err != nil {
		return err
	}
	// A fresh checkpoint each attempt: one that waited for a lease reloads.
	ckpt := newCheckpoint(in.conf.lateArrival, in.conf.sel)
	runCtx, stop := context.WithCancel(context.Background())
	saver := &checkpointSaver{ckpt: ckpt, store: in.checkpointStore(bucket), log: in.log, metrics: in.metrics, clock: in.clock,
		lease: in.conf.ckptLease, me: in.owner, onLost: in.lostCheckpoint(stop), wake: make(chan struct{}, 1), onSave: make(chan struct{})}
	if err := saver.acquire(ctx); err != nil {
		stop()
		_ = bucket.Close()
		return err
	}
	if saver.store != nil {
		in.log.Infof("Checkpoint kept in %s, held by %s", saver.store.describe(), in.owner.ID)
	} else if in.conf.watch {
		in.log.Warnf("No checkpoint configured: a restart will read every object again")
	}
	in.bucket, in.ckpt, in.saver, in.stop = bucket, ckpt, saver, stop
	in.batches = make(chan readBatch)
	in.stopped = make(chan struct{})
	go in.saver.run(runCtx)
	go in.run(runCtx)
	if in.conf.progressPeriod > 0 {
		go in.reportProgress(runCtx)
	}
	go in.tickLag(runCtx)
	return nil
}

// openChecked opens the bucket and proves it can be listed, so that a
// missing or forbidden bucket fails at start with a message that says so.
func openChecked(ctx context.Context, url, prefix string) (*blob.Bucket, error) {
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", bucketName(url), err)
	}
	_, _, err = bucket.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: prefix})
	if err == nil {
		return bucket, nil
	}
	_ = bucket.Close()
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return nil, fmt.Errorf("bucket %s does not exist: %w", bucketName(url), err)
	case gcerrors.PermissionDenied:
		return nil, fmt.Errorf("access to bucket %s is forbidden (the credentials need list and read permissions on %q): %w", bucketName(url), prefix, err)
	}
	return nil, fmt.Errorf("cannot list bucket %s: %w", bucketName(url), err)
}

func (in *currentsInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	if in.batches == nil {
		return nil, nil, service.ErrNotConnected
	}
	select {
	case b, open := <-in.batches:
		if !open {
			return nil, nil, service.ErrEndOfInput
		}
		return b.batch, b.ack, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (in *currentsInput) Close(ctx context.Context) error {
	if in.stop == nil {
		return nil
	}
	in.stop()
	select {
	case <-in.stopped:
	case <-ctx.Done():
	}
	err := in.saver.release(ctx)
	_ = in.bucket.Close()
	return err
}

// lostCheckpoint stops reading when another process took the checkpoint
// over: going on would send every event twice. The input then ends.
func (in *currentsInput) lostCheckpoint(stop context.CancelFunc) func(error) {
	return func(err error) {
		in.log.Errorf("Stopping: %v", err)
		stop()
	}
}

// run makes one pass, or polls for ever in watch mode, then closes the
// batch channel once every reader is done.
func (in *currentsInput) run(ctx context.Context) {
	defer close(in.stopped)
	objects := make(chan object)
	var readers sync.WaitGroup
	for range in.conf.parallel {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for o := range objects {
				// A reader whose object was handed out before a stop reads
				// on and abandons it, which releases it.
				in.saver.waitSaved(ctx, uint64(in.conf.parallel))
				in.readObject(ctx, o)
			}
		}()
	}
	w := &walker{bucket: in.bucket, sel: in.conf.sel, skipHour: in.ckpt.hourDone, hours: in.hoursToList}
	for pass := 0; ; pass++ {
		in.listPass(ctx, w, objects)
		if !in.conf.watch || ctx.Err() != nil {
			break
		}
		wait := in.clock.NewTimer(in.conf.pollInterval)
		if in.afterPass != nil {
			in.afterPass(ctx, pass)
		}
		select {
		case <-wait.Chan():
		case <-ctx.Done():
			wait.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(objects)
	readers.Wait()
	close(in.batches)
}

// listPass walks the bucket once, retrying a failed listing with backoff,
// and hands every new object to the readers.
func (in *currentsInput) listPass(ctx context.Context, w *walker, objects chan<- object) {
	policy := backoff.NewExponentialBackOff(backoff.WithMaxInterval(time.Minute), backoff.WithMaxElapsedTime(0))
	for {
		started := in.clock.Now()
		w.partitions = w.partitions[:0]
		err := w.walk(ctx, in.conf.prefix, func(o object) error {
			if !in.claim(o) {
				return nil
			}
			in.metrics.found.Incr(1)
			in.progress.found(1)
			select {
			case objects <- o:
				return nil
			case <-ctx.Done():
				in.release(o)
				return ctx.Err()
			}
		})
		if err == nil {
			// Only a complete listing settles hours: a failed one may have
			// missed objects in them.
			in.ckpt.walked(w.partitions, started)
			in.saver.poke()
		}
		in.progress.listed()
		if err == nil || ctx.Err() != nil {
			return
		}
		wait := policy.NextBackOff()
		in.log.Errorf("Listing %s failed, retrying in %v: %v", bucketName(in.conf.url), wait, err)
		if !sleepCtx(ctx, in.clock, wait) {
			return
		}
	}
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
	if in.inFlight[o.key] || !in.ckpt.listed(o) {
		return false
	}
	in.inFlight[o.key] = true
	return true
}

func (in *currentsInput) release(o object) {
	in.mu.Lock()
	delete(in.inFlight, o.key)
	in.mu.Unlock()
}

// tickLag keeps the checkpoint lag current while nothing new gets done, so
// that a stalled pipeline shows a growing lag.
func (in *currentsInput) tickLag(ctx context.Context) {
	ticker := time.NewTicker(15 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			in.reportLag()
		case <-ctx.Done():
			return
		}
	}
}
