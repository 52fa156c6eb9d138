package brazecurrents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

func (in *currentsInput) checkpointStore(bucket *blob.Bucket) checkpointStore {
	switch {
	case in.conf.ckptCache != "":
		return newSlotted(&cacheStore{mgr: in.mgr, cache: in.conf.ckptCache}, in.conf.ckptKey, in.log)
	case in.conf.ckptInBucket:
		// No limit of its own: the saver limits each call (callLimit).
		return newSlotted(&bucketStore{bucket: bucket, name: bucketName(in.conf.url)}, in.conf.ckptKey, in.log)
	}
	return nil
}

// keyStore reads and writes whole values by key.
type keyStore interface {
	get(ctx context.Context, key string) ([]byte, error) // nil, nil when absent
	put(ctx context.Context, key string, value []byte) error
	describe() string
}

// slotted keeps the checkpoint in two slots written in turn, each stamped
// with a sequence number. Few stores write atomically (fileblob's metadata
// file and the file cache are truncated, then written), so a crash during a
// write can leave one slot damaged: the other still holds the previous
// checkpoint, which at worst re-sends the objects done in between.
type slotted struct {
	store keyStore
	keys  [2]string
	seq   uint64
	log   *service.Logger
}

func newSlotted(store keyStore, key string, log *service.Logger) *slotted {
	return &slotted{store: store, keys: slotKeys(key), log: log}
}

// slotKeys are the keys of the two slots of the checkpoint key names.
func slotKeys(key string) [2]string {
	base := strings.TrimSuffix(key, ".json")
	ext := strings.TrimPrefix(key, base)
	return [2]string{base + ".a" + ext, base + ".b" + ext}
}

func (s *slotted) load(ctx context.Context, every bool) ([]byte, error) {
	var best []byte
	var bestKey string
	var seq uint64
	var problems []string
	damaged, absent := 0, 0
	for _, key := range s.keys {
		raw, err := s.store.get(ctx, key)
		if err != nil && every {
			// A slot the store failed to read (a timeout, a 5xx, a 403) may
			// hold the newest save: the other one would give an older
			// checkpoint, or name its previous holder. The caller tries again.
			return nil, fmt.Errorf("reading checkpoint slot %s: %w", key, err)
		}
		if err != nil {
			// At start: a write cut by a kill can leave a slot the store
			// cannot read (fileblob's attributes file empty: EOF) until it is
			// written again, which the claim does. Held up on it, the process
			// waited for ever; the other slot costs objects read again at worst.
			problems = append(problems, key+": "+err.Error())
			continue
		}
		if raw == nil {
			absent++
			continue
		}
		var stamp struct{ Seq uint64 }
		if err := json.Unmarshal(raw, &stamp); err != nil {
			problems = append(problems, key+": "+err.Error())
			damaged++
			continue
		}
		if best == nil || stamp.Seq > seq {
			best, bestKey, seq = raw, key, stamp.Seq
		}
	}
	if best == nil && damaged == 1 && absent == 1 {
		// Slots are written in turn, so the other one's absence means this
		// was the first save, the claim at start, cut by a crash: no save
		// ever held progress, and there is nothing to resume.
		if s.log != nil {
			s.log.Warnf("Checkpoint slot %s is unreadable and the other slot was never written: the first save was cut short by a crash; starting with no checkpoint",
				problems[0])
		}
		return nil, nil
	}
	if best == nil && len(problems) > 0 {
		return nil, errors.New("no readable checkpoint slot: " + strings.Join(problems, "; "))
	}
	if len(problems) > 0 && s.log != nil {
		// A crash during a write damages the slot being written, the newest:
		// the previous checkpoint is used, and what was done since is read again.
		s.log.Warnf("Checkpoint slot %s is unreadable, using slot %s (save %d) instead: objects done since that save will be read again",
			strings.Join(problems, "; "), bestKey, seq)
	}
	s.seq = seq
	return best, nil
}

func (s *slotted) save(ctx context.Context, doc []byte) error {
	s.seq++
	stamped, err := stampSeq(doc, s.seq)
	if err != nil {
		return err
	}
	return s.store.put(ctx, s.keys[s.seq%2], stamped)
}

func (s *slotted) describe() string {
	return s.store.describe() + " keys " + strings.Join(s.keys[:], ", ")
}

// stampSeq adds "seq" to a checkpoint document.
func stampSeq(doc []byte, seq uint64) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	m["seq"] = json.RawMessage(strconv.FormatUint(seq, 10))
	return json.Marshal(m)
}

// cacheStore keeps the checkpoint in a Connect cache resource.
type cacheStore struct {
	mgr   *service.Resources
	cache string
}

func (s *cacheStore) get(ctx context.Context, key string) (raw []byte, err error) {
	accessErr := s.mgr.AccessCache(ctx, s.cache, func(c service.Cache) {
		raw, err = c.Get(ctx, key)
	})
	if accessErr != nil {
		return nil, accessErr
	}
	if errors.Is(err, service.ErrKeyNotFound) {
		return nil, nil
	}
	return raw, err
}

func (s *cacheStore) put(ctx context.Context, key string, doc []byte) (err error) {
	accessErr := s.mgr.AccessCache(ctx, s.cache, func(c service.Cache) {
		err = c.Set(ctx, key, doc, nil)
	})
	if accessErr != nil {
		return accessErr
	}
	return err
}

func (s *cacheStore) describe() string { return "cache " + s.cache }

// bucketStore keeps the checkpoint as an object in the bucket itself.
type bucketStore struct {
	bucket  *blob.Bucket
	name    string
	timeout time.Duration // each call's limit (read_timeout; 0: none)
}

func (s *bucketStore) get(ctx context.Context, key string) ([]byte, error) {
	ctx, done := callCtx(ctx, s.timeout)
	raw, err := s.bucket.ReadAll(ctx, key)
	err = done(err)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, nil
	}
	return raw, bucketurl.Redact(err)
}

func (s *bucketStore) put(ctx context.Context, key string, doc []byte) error {
	ctx, done := callCtx(ctx, s.timeout)
	return bucketurl.Redact(done(s.bucket.WriteAll(ctx, key, doc, &blob.WriterOptions{ContentType: "application/json"})))
}

func (s *bucketStore) describe() string { return "bucket " + s.name }
