package brazecurrents

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

func (in *currentsInput) checkpointStore(bucket *blob.Bucket) checkpointStore {
	switch {
	case in.conf.ckptCache != "":
		return &cacheStore{mgr: in.mgr, cache: in.conf.ckptCache, key: in.conf.ckptKey}
	case in.conf.ckptInBucket:
		return &bucketStore{bucket: bucket, key: in.conf.ckptKey, name: bucketName(in.conf.url)}
	}
	return nil
}

// cacheStore keeps the checkpoint in a Connect cache resource.
type cacheStore struct {
	mgr        *service.Resources
	cache, key string
}

func (s *cacheStore) load(ctx context.Context) (raw []byte, err error) {
	accessErr := s.mgr.AccessCache(ctx, s.cache, func(c service.Cache) {
		raw, err = c.Get(ctx, s.key)
	})
	if accessErr != nil {
		return nil, accessErr
	}
	if errors.Is(err, service.ErrKeyNotFound) {
		return nil, nil
	}
	return raw, err
}

func (s *cacheStore) save(ctx context.Context, doc []byte) (err error) {
	accessErr := s.mgr.AccessCache(ctx, s.cache, func(c service.Cache) {
		err = c.Set(ctx, s.key, doc, nil)
	})
	if accessErr != nil {
		return accessErr
	}
	return err
}

func (s *cacheStore) describe() string { return "cache " + s.cache + " key " + s.key }

// bucketStore keeps the checkpoint as an object in the bucket itself.
type bucketStore struct {
	bucket    *blob.Bucket
	key, name string
}

func (s *bucketStore) load(ctx context.Context) ([]byte, error) {
	raw, err := s.bucket.ReadAll(ctx, s.key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	return raw, err
}

func (s *bucketStore) save(ctx context.Context, doc []byte) error {
	return s.bucket.WriteAll(ctx, s.key, doc, &blob.WriterOptions{ContentType: "application/json"})
}

func (s *bucketStore) describe() string { return "bucket " + s.name + " object " + s.key }

// checkpointSaver writes the checkpoint whenever it changed, one write at a
// time: done objects that arrive during a write go into the next one.
type checkpointSaver struct {
	ckpt    *checkpoint
	store   checkpointStore
	log     *service.Logger
	metrics inputMetrics
	wake    chan struct{}
	mu      sync.Mutex // one write at a time
}

func newCheckpointSaver(c *checkpoint, store checkpointStore, log *service.Logger, m inputMetrics) *checkpointSaver {
	return &checkpointSaver{ckpt: c, store: store, log: log, metrics: m, wake: make(chan struct{}, 1)}
}

func (s *checkpointSaver) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *checkpointSaver) run(ctx context.Context) {
	if s.store == nil {
		return
	}
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
		if err := s.flush(ctx); err != nil {
			// The next done object, or the final flush, tries again.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			s.poke()
		}
	}
}

// flush writes the checkpoint if it changed since the last write.
func (s *checkpointSaver) flush(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, _, changed := s.ckpt.snapshot()
	if !changed {
		return nil
	}
	if err := s.store.save(context.WithoutCancel(ctx), doc); err != nil {
		s.ckpt.markDirty()
		s.metrics.saves.Incr(1, "error")
		s.log.Errorf("Saving the checkpoint to %s failed: %v", s.store.describe(), err)
		return err
	}
	s.metrics.saves.Incr(1, "ok")
	return nil
}
