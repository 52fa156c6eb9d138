package brazecurrents

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/subscription"
	"github.com/currents-connect/currents-connect/plugin/brazecurrents/avro"

	// The bucket schemes the input opens, each with its cloud's usual credential chain.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

func init() {
	service.MustRegisterBatchInput("braze_currents", inputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in, err := inputFromParsed(conf, mgr)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatchedToggled(conf, in)
		})
}

// inputFromParsed builds the input, failing on what only a change of the
// config can fix: an error from Connect would be retried for ever instead.
func inputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*currentsInput, error) {
	c, err := inputConfigFromParsed(conf)
	if err != nil {
		return nil, err
	}
	if err := checkLocalDir(context.Background(), c.url); err != nil {
		return nil, err
	}
	// A cache is looked up at each use: a label no resource has (a typo, a
	// resources file left out) failed every connect, for ever. Benthos' own
	// cache users check it here too.
	if c.ckptCache != "" && !mgr.HasCache(c.ckptCache) {
		return nil, fmt.Errorf("%s.%s: cache resource %q was not found: define it under cache_resources, in the config or in a resources file given with -r",
			inFieldCheckpoint, inFieldCheckpointCache, c.ckptCache)
	}
	warnUnknownTypes(mgr.Logger(), inFieldInclude, c.sel.include)
	warnUnknownTypes(mgr.Logger(), inFieldExclude, c.sel.exclude)
	return newCurrentsInput(c, mgr), nil
}

// currentsInput runs a lister that feeds objects to a pool of readers; the
// readers decode objects into batches that ReadBatch hands to the pipeline.
type currentsInput struct {
	conf  inputConfig
	mgr   *service.Resources
	log   *service.Logger
	stats *inputStats
	scan  *scannerCreator
	clock clockwork.Clock // decides which hours are closed; fake in tests
	owner ownerStamp      // this process, in the checkpoint's lease
	// afterPass, when set, is called after each listing pass, once the wait
	// for the next one has started (tests drive polls with a fake clock).
	afterPass func(ctx context.Context, pass int)
	// noticeSettled, when set, is called once a notification is acknowledged
	// (acked) or sent back to the queue.
	noticeSettled func(m *pubsub.Message, acked bool)
	// noticeHeldBack, when set, is called once the notifications of an
	// unreadable object are held back, with how long.
	noticeHeldBack func(key string, d time.Duration)
	// objectSettled, when set, is called once a read object is settled,
	// with its outcome.
	objectSettled func(key, outcome string)
	// readRetrying, when set, is called as a failed read of key waits to
	// try again, its timer set on the clock (tests move the clock on).
	readRetrying func(key string, wait time.Duration)
	// afterShardCheck, when set, is called after each look at the other
	// shards' checkpoints, with the time it was made.
	afterShardCheck func(at time.Time)

	bucket  *blob.Bucket
	sub     *subscription.Subscription // notification mode: the queue, no checkpoint
	ckpt    *checkpoint
	saver   *checkpointSaver
	shards  *shardCheck // nil unless the checkpoint is in the bucket, on its default key
	batches chan readBatch
	stop    context.CancelFunc
	stopped chan struct{}

	mu       sync.Mutex
	inFlight map[string]bool         // objects being read or awaiting acks
	retrying map[string]bool         // failed objects due to be tried again, not yet taken by a reader
	held     map[string]*heldNotices // notification mode: by object in flight
	back     heldBack                // notification mode: unreadable objects' notifications, to send back
	ended    bool                    // a one-pass run read every object
	summary  sync.Once               // the run summary, logged once the run is over

	warnedNoExport     bool           // run's own: the last listing found no export, and said so
	warnedNoneSelected bool           // run's own: the last listing's export was all left out, and said so
	unlisted           spells         // run's own: directories whose listing fails
	unreadable         spells         // objects whose last read failed
	skipped            skippedObjects // run's own: objects listings found and do not read
	late               lateLookback   // run's own: the lookback at late files
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
		stats:    newInputStats(mgr.Metrics(), mgr.Logger()),
		scan:     &scannerCreator{batchSize: c.batchSize, structured: c.structured, log: mgr.Logger(), programs: avro.NewSchemaCache()},
		inFlight: map[string]bool{},
		retrying: map[string]bool{},
		held:     map[string]*heldNotices{},
		clock:    clockwork.NewRealClock(),
		owner:    newOwner(),
	}
	in.late.log = newLogThrottle(in.log)
	in.late.log.now = func() time.Time { return in.clock.Now() }
	if c.notifications != "" {
		in.unreadable.forgetAfter, in.unreadable.max = forgetUnreadable, maxUnreadable
	}
	return in
}

func (in *currentsInput) Connect(ctx context.Context) error {
	if in.bucket != nil {
		return nil
	}
	bucket, err := openChecked(ctx, in.conf.url, in.conf.prefix, in.conf.readTimeout)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.Background())
	if in.conf.notifications != "" {
		err = in.openNotifications(ctx)
	} else {
		err = in.openCheckpoint(ctx, bucket, stop)
	}
	if err != nil {
		stop()
		_ = bucket.Close()
		return err
	}
	in.bucket, in.stop = bucket, stop
	in.batches = make(chan readBatch)
	in.stopped = make(chan struct{})
	if in.saver != nil {
		go in.saver.run(runCtx)
	}
	if in.conf.summaryPeriod > 0 && (in.conf.watch || in.sub != nil) {
		go in.logSummaries(runCtx, in.clock.NewTicker(in.conf.summaryPeriod), in.conf.summaryPeriod)
	}
	if in.shards != nil {
		go in.shards.run(runCtx)
	}
	go in.run(runCtx)
	if in.conf.progressPeriod > 0 {
		go in.stats.logProgress(runCtx, in.log, in.conf.progressPeriod)
	}
	go in.stats.tickLag(runCtx, in.clock)
	return nil
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
	// Before the stop: the notifications of the reads it cuts short are
	// sent back once the stream ended, as those held back are (below).
	in.subStopping()
	in.stop()
	select {
	case <-in.stopped:
	case <-ctx.Done():
	}
	in.notePassStopped()
	var err error
	if in.saver != nil {
		err = in.saver.release(ctx)
	}
	if in.sub != nil {
		in.sub.Stopping() // again, should it have been opened again meanwhile
		in.sendBackHeld()
		// Sends the acks still pending; unsettled notifications come back.
		_ = in.sub.Shutdown(ctx)
	}
	_ = in.bucket.Close()
	return err
}
