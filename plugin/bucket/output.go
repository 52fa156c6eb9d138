// Package bucket holds the bucket output: batches of messages written as
// objects of lines to S3, GCS, Azure Blob or a directory, through
// gocloud.dev/blob.
package bucket

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

const (
	outFieldURL         = "url"
	outFieldPath        = "path"
	outFieldContentType = "content_type"
	outFieldTimeout     = "timeout"
	outFieldBatching    = "batching"
	outFieldMaxInFlight = "max_in_flight"
)

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Writes each batch of messages as one object of lines to a bucket: S3, Google Cloud Storage, Azure Blob Storage or a directory.").
		Description(`
Each batch becomes one object: its messages, each followed by a newline, so a batch of JSON messages is
a JSON Lines object. The `+"`batching`"+` policy decides how many messages an object holds; without one,
an object holds a batch as it reaches the output (as an input or a `+"`fallback`"+` made it), often a single
message. A message holding newlines spans several lines.

A batch is acknowledged only once its object was written and closed without error; any error fails the
whole batch, which Connect then retries or hands to a `+"`fallback`"+`. Objects are written whole (an
object store never shows half an object), so a retried batch leaves either no object or a complete one,
and a retry under a key that interpolates to the same value replaces it.

The bucket is opened as the `+"`braze_currents`"+` input opens one, with the cloud's usual credential
chain; the credentials need to create objects only (no list or read). Errors name the bucket URL
without its query, and the object key.`).
		Fields(
			service.NewStringField(outFieldURL).
				Description("The bucket: `s3://bucket?region=…`, `gs://bucket`, `azblob://container` or `file:///path/to/dir` (the directory must exist, unless the URL asks `create_dir=true`). A directory receives an object as a temporary file beside it, `KEY.<hex>.tmp`, renamed once whole (a process killed mid-write may leave one behind), and its content type in `KEY.attrs`; the object and `KEY.attrs` are synced to disk, and so is the rename, before its batch is acknowledged, so that a crash of the machine cannot lose the object or leave it unreadable.").
				Examples("s3://my-currents-bucket?region=us-east-1", "gs://my-bucket", "azblob://my-container", "file:///var/lib/currents-connect/dead-letters").
				Secret(), // a URL may carry a password or a token: echo scrubs it
			service.NewInterpolatedStringField(outFieldPath).
				Description("The key of the object a batch is written to, interpolated against the batch (its first message for message functions): make it unique per batch, or a batch overwrites the object of an earlier one.").
				Examples(
					`dead-letters/${! timestamp_unix() }-${! uuid_v4() }.jsonl`,
					`dead-letters/${! now().ts_format("2006-01-02") }/${! uuid_v4() }.jsonl`,
				),
			service.NewStringField(outFieldContentType).
				Description("The content type of the objects.").
				Default("application/x-ndjson"),
			service.NewDurationField(outFieldTimeout).
				Description("The longest a write may take; then it fails and Connect retries the batch. Without it, a server that takes a request and never answers would hold the batch, and its place among `max_in_flight`, for as long as the process lives. Raise it when objects take longer to upload: a write that always outlasts it is retried for ever.").
				Default("30s").
				Advanced(),
			service.NewBatchPolicyField(outFieldBatching),
			service.NewOutputMaxInFlightField(),
		)
}

func init() {
	service.MustRegisterBatchOutput("bucket", outputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			out, err := outputFromParsed(conf, mgr)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			policy, err := conf.FieldBatchPolicy(outFieldBatching)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			return out, policy, maxInFlight, nil
		})
}

// outputFromParsed builds the output, failing on what only a change of the
// config can fix: a bad URL would otherwise be retried for ever.
func outputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*bucketOutput, error) {
	url, err := conf.FieldString(outFieldURL)
	if err != nil {
		return nil, err
	}
	if err := bucketurl.Check(outFieldURL, url); err != nil {
		return nil, err
	}
	if err := bucketurl.CheckLocalDir(context.Background(), outFieldURL, url); err != nil {
		return nil, err
	}
	path, err := conf.FieldInterpolatedString(outFieldPath)
	if err != nil {
		return nil, err
	}
	contentType, err := conf.FieldString(outFieldContentType)
	if err != nil {
		return nil, err
	}
	timeout, err := conf.FieldDuration(outFieldTimeout)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%s must be positive, got %v", outFieldTimeout, timeout)
	}
	return &bucketOutput{url: url, path: path, contentType: contentType, timeout: timeout, log: mgr.Logger(),
		durable: newDurable(bucketurl.LocalDir(url))}, nil
}

// bucketOutput writes one object per batch.
type bucketOutput struct {
	url         string
	path        *service.InterpolatedString
	contentType string
	timeout     time.Duration
	log         *service.Logger
	durable     *durable

	mu     sync.RWMutex
	bucket *blob.Bucket
}

func (o *bucketOutput) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bucket != nil {
		return nil
	}
	// Opening reaches no server: a wrong bucket or missing permission shows
	// on the first write, which names it. Listing here would demand a
	// permission a writer does not need.
	bucket, err := bucketurl.Open(ctx, o.url)
	if err != nil {
		return fmt.Errorf("opening bucket %s: %w", bucketurl.Name(o.url), err)
	}
	o.bucket = bucket
	return nil
}

func (o *bucketOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.bucket == nil {
		return service.ErrNotConnected
	}
	key, err := batch.TryInterpolatedString(0, o.path)
	if err != nil {
		return fmt.Errorf("%s interpolation, no object can be written to bucket %s: %w", outFieldPath, bucketurl.Name(o.url), err)
	}
	if key == "" {
		return fmt.Errorf("%s interpolated to an empty key: no object can be written to bucket %s", outFieldPath, bucketurl.Name(o.url))
	}
	// The messages' own bytes, written one after the other: a copy of the
	// whole batch as one body would hold it twice for the whole write.
	lines := make([][]byte, len(batch))
	for i, msg := range batch {
		if lines[i], err = msg.AsBytes(); err != nil {
			return o.writeError(key, err)
		}
	}
	// write returns only once the object was stored whole (and, in a
	// directory, synced to disk): only then may the batch be acknowledged.
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := o.durable.write(ctx, o.bucket, key, lines, o.contentType); err != nil {
		return o.writeError(key, err)
	}
	return nil
}

// writeError names the bucket (without its query) and the key, with a hint
// for the causes only the operator can fix.
func (o *bucketOutput) writeError(key string, err error) error {
	name, err := bucketurl.Name(o.url), bucketurl.Redact(err)
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return fmt.Errorf("writing %q to bucket %s: the bucket does not exist: %w", key, name, err)
	case gcerrors.PermissionDenied:
		return fmt.Errorf("writing %q to bucket %s is forbidden (the credentials need permission to create objects): %w", key, name, err)
	case gcerrors.DeadlineExceeded:
		return fmt.Errorf("writing %q to bucket %s took longer than its %s, %v: %w", key, name, outFieldTimeout, o.timeout, err)
	}
	return fmt.Errorf("writing %q to bucket %s: %w", key, name, err)
}

func (o *bucketOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bucket == nil {
		return nil
	}
	err := o.bucket.Close()
	o.bucket = nil
	return err
}
