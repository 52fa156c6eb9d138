package brazecurrents

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
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
	}
	in.ckpt = newCheckpoint(func(hour time.Time) bool {
		return time.Since(hour.Add(time.Hour)) > c.lateArrival
	})
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
	store := in.checkpointStore(bucket)
	if store != nil {
		raw, err := store.load(ctx)
		if err != nil {
			_ = bucket.Close()
			return fmt.Errorf("loading the checkpoint from %s: %w", store.describe(), err)
		}
		if raw != nil {
			if err := in.ckpt.restore(raw); err != nil {
				_ = bucket.Close()
				return fmt.Errorf("the checkpoint in %s: %w (use a new checkpoint key to start over)", store.describe(), err)
			}
		}
		in.log.Infof("Checkpoint kept in %s", store.describe())
	} else if in.conf.watch {
		in.log.Warnf("No checkpoint configured: a restart will read every object again")
	}
	in.bucket = bucket
	in.batches = make(chan readBatch)
	in.stopped = make(chan struct{})
	runCtx, stop := context.WithCancel(context.Background())
	in.stop = stop
	in.saver = newCheckpointSaver(in.ckpt, store, in.log, in.metrics)
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
	err := in.saver.flush(ctx)
	_ = in.bucket.Close()
	return err
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
				in.readObject(ctx, o)
			}
		}()
	}
	w := &walker{bucket: in.bucket, sel: in.conf.sel, skipHour: in.ckpt.hourDone}
	for pass := 0; ; pass++ {
		if pass > 0 && in.conf.watch {
			// After the first pass only hours that can still get files change.
			w.recent = func() []time.Time { return recentHours(time.Now(), in.conf.lateArrival) }
		}
		in.listPass(ctx, w, objects)
		if !in.conf.watch || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(in.conf.pollInterval):
		case <-ctx.Done():
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
		in.ckpt.startListing()
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
		in.ckpt.endListing()
		in.progress.listed()
		if err == nil || ctx.Err() != nil {
			return
		}
		wait := policy.NextBackOff()
		in.log.Errorf("Listing %s failed, retrying in %v: %v", bucketName(in.conf.url), wait, err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
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
