package main

import (
	"bytes"
	"io"
	"sync"

	"github.com/johannesboyne/gofakes3"
)

// copyingBackend serves s3bolt's objects from copies made while no write
// runs. s3bolt's GetObject returns contents that alias bbolt's memory map
// after its read transaction has ended: a write that grew the file remapped
// it under a GET still streaming an object, and the server died of a
// segmentation fault (seen in e2e runs); a write reusing the pages would
// have served other bytes.
type copyingBackend struct {
	gofakes3.Backend
	mu sync.RWMutex // held for writing by every write
}

func (b *copyingBackend) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return copied(b.Backend.GetObject(bucket, key, rng))
}

func (b *copyingBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return copied(b.Backend.HeadObject(bucket, key))
}

// copied gives obj its own contents and hash.
func copied(obj *gofakes3.Object, err error) (*gofakes3.Object, error) {
	if err != nil || obj == nil {
		return obj, err
	}
	obj.Hash = bytes.Clone(obj.Hash)
	if obj.Contents == nil {
		return obj, nil
	}
	data, err := io.ReadAll(obj.Contents)
	_ = obj.Contents.Close()
	if err != nil {
		return nil, err
	}
	obj.Contents = io.NopCloser(bytes.NewReader(data))
	return obj, nil
}

func (b *copyingBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.PutObject(bucket, key, meta, input, size, conditions)
}

func (b *copyingBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteObject(bucket, key)
}

func (b *copyingBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteMulti(bucket, keys...)
}

func (b *copyingBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CopyObject(srcBucket, srcKey, dstBucket, dstKey, meta)
}

func (b *copyingBackend) CreateBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CreateBucket(name)
}

func (b *copyingBackend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteBucket(name)
}

func (b *copyingBackend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.ForceDeleteBucket(name)
}
