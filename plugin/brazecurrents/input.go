package brazecurrents

import (
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	// The bucket schemes the input opens, each with its cloud's usual credential chain.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

const (
	inFieldURL              = "url"
	inFieldPrefix           = "prefix"
	inFieldInclude          = "include_event_types"
	inFieldExclude          = "exclude_event_types"
	inFieldSince            = "since"
	inFieldUntil            = "until"
	inFieldWatch            = "watch"
	inFieldPollInterval     = "poll_interval"
	inFieldLateArrival      = "late_arrival"
	inFieldCheckpoint       = "checkpoint"
	inFieldCheckpointCache  = "cache"
	inFieldCheckpointBucket = "in_bucket"
	inFieldCheckpointKey    = "key"
	inFieldCheckpointLease  = "lease"
	inFieldDelete           = "delete_done"
	inFieldMoveTo           = "move_done_to"
	inFieldShard            = "shard"
	inFieldParallel         = "max_parallel_objects"
	inFieldReadAttempts     = "read_attempts"
	inFieldProgress         = "progress_interval"
)

// Metadata the input adds to the scanner's.
const (
	MetaBucket     = "braze_bucket"
	MetaKey        = "braze_key"
	MetaObjectSize = "braze_object_size"
	MetaModTime    = "braze_object_mod_time"
)

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Reads a Braze Currents export from S3, GCS, Azure Blob or disk, decoding every event, with checkpoints.").
		Description(`
Walks a Currents export laid out the way Braze writes it
(`+"`<prefix>/dataexport.…integration.<id>/event_type=<type>/date=<hour>/…/*.avro`"+`), directory by directory
with no fixed depth, and decodes each object like the `+"`braze_currents`"+` scanner. Unselected event types
and hours are pruned while listing, so they are never downloaded.

Without `+"`watch`"+` the input makes one pass and ends once every event was acknowledged. With `+"`watch`"+`
it polls; a poll lists, per event type, the `+"`date=`"+` hours after the checkpoint's watermark up to now, so its
cost does not grow with the bucket's history and a poll delayed by a stall catches up on every hour.

An object counts as done only after every event from it was acknowledged. Done objects are recorded in a
checkpoint (a cache resource, or an object in the bucket) that survives restarts: after a crash at any
moment, a restart re-reads at most the objects that were in flight. An hour counts as done (passes the
watermark) only after a listing that started `+"`late_arrival`"+` after the hour ended found every object in it
done. With `+"`since`"+` or `+"`until`"+` the default checkpoint key names the window, so a backfill window never
marks other hours as done. The checkpoint holds a lease: a second process on it waits until the first
stops or its lease expires. Replicas with `+"`shard: i/N`"+` split the objects between them by a hash of the key,
with no overlap and no coordination.

An object that cannot be read is retried with backoff (`+"`read_attempts`"+`), resuming after the events it
already delivered, then left for the next pass. A corrupt object is reported with its key, counted, and
skipped (recorded as done) after delivering the events before the damage. A missing or forbidden bucket
fails at connection with a message saying so.

== Metadata

Besides the `+"`braze_currents`"+` scanner's metadata (`+"`braze_event_type`"+`, `+"`braze_integration_id`"+`,
`+"`braze_date_hour`"+`, `+"`braze_currents_version`"+`, `+"`braze_source`"+`, `+"`braze_record_index`"+`):

- `+"`braze_bucket`"+`: the bucket URL without its query.
- `+"`braze_key`"+`: the object key.
- `+"`braze_object_size`"+`: the object's size in bytes.
- `+"`braze_object_mod_time`"+`: the object's modification time, RFC 3339.

== Metrics

`+"`braze_currents_objects_found`"+`, `+"`braze_currents_objects_done`"+`, `+"`braze_currents_objects_corrupt`"+`,
`+"`braze_currents_objects_failed`"+` (not readable after every attempt), `+"`braze_currents_events_read`"+` (label
`+"`event_type`"+`), `+"`braze_currents_checkpoint_saves`"+` (label `+"`result`"+`) and
`+"`braze_currents_checkpoint_lag_seconds`"+` (how far the end of the newest queue hour with a done object is behind now).
`).
		Fields(
			service.NewStringField(inFieldURL).
				Description("The bucket: `s3://bucket?region=eu-west-1`, `gs://bucket`, `azblob://container`, `file:///path/to/dir`. Credentials come from each cloud's usual chain (environment, shared config, workload identity).").
				Example("s3://my-currents-bucket?region=us-east-1").Example("gs://my-currents-bucket").Example("file:///data/currents"),
			service.NewStringField(inFieldPrefix).
				Description("The prefix Currents writes under (Braze's default is `currents`).").Default("currents"),
			service.NewStringListField(inFieldInclude).
				Description("Event types to read, as glob patterns (entries may hold several, comma-separated); empty reads every type.").
				Example([]string{"users.messages.email.*", "users.campaigns.Conversion"}).Default([]string{}),
			service.NewStringListField(inFieldExclude).
				Description("Event types to skip, as glob patterns; applied after `include_event_types`.").Default([]string{}),
			service.NewStringField(inFieldSince).
				Description("The first queue hour (`date=` partition) to read: `2026-01-31`, `2026-01-31-05` or RFC 3339. Empty: from the beginning.").Default(""),
			service.NewStringField(inFieldUntil).
				Description("The last queue hour to read, inclusive, in the same forms. Empty: no end.").Default(""),
			service.NewBoolField(inFieldWatch).
				Description("Keep polling for new objects instead of ending after one pass.").Default(false),
			service.NewDurationField(inFieldPollInterval).
				Description("How often to poll in watch mode.").Default("1m"),
			service.NewDurationField(inFieldLateArrival).
				Description("How long after its hour ends a `date=` partition may still receive files. An hour counts as done only after a listing that started this long after the hour ended found every object in it done.").Default("2h").Advanced(),
			service.NewObjectField(inFieldCheckpoint,
				service.NewStringField(inFieldCheckpointCache).
					Description("Keep the checkpoint in this cache resource.").Default(""),
				service.NewBoolField(inFieldCheckpointBucket).
					Description("Keep the checkpoint as an object in the bucket itself (needs write access to that one key).").Default(false),
				service.NewStringField(inFieldCheckpointKey).
					Description("The cache key or object key. Empty: `currents-connect-checkpoint-<prefix>-shard-<i>-of-<n>`, plus `-since-<hour>-until-<hour>` when `since` or `until` is set, so that a backfill window keeps a checkpoint of its own (in a bucket, under `currents-connect/checkpoints/`, with `.json`). Use a new key to replay from scratch.").Default(""),
				service.NewDurationField(inFieldCheckpointLease).
					Description("How long the checkpoint stays held by this process if it stops renewing it (a crash). Another process started on the same checkpoint waits, logging who holds it, until this one stops or the lease expires; a process that finds its checkpoint taken over stops. Renewed every third of it.").Default("1m").Advanced(),
			).Description("Where progress is kept. With neither `cache` nor `in_bucket`, nothing is kept and a restart reads every object again."),
			service.NewBoolField(inFieldDelete).
				Description("Delete each object once done.").Default(false).Advanced(),
			service.NewStringField(inFieldMoveTo).
				Description("Move each object once done to this prefix (outside `prefix`), keeping the rest of its key.").Default("").Advanced(),
			service.NewStringField(inFieldShard).
				Description("This replica's share of the objects, `i/N`: N replicas with shards 0/N … N-1/N read every object exactly once between them.").Default("0/1"),
			service.NewIntField(inFieldParallel).
				Description("How many objects are downloaded and decoded at once. Each holds one Avro block and at most one batch of decoded events in memory; the events in flight downstream add to that.").Default(4),
			service.NewIntField(inFieldReadAttempts).
				Description("How many times an unreadable object is tried in a pass before it is left for the next one.").Default(5).Advanced(),
			service.NewDurationField(inFieldProgress).
				Description("How often a progress summary is logged while objects are being read; 0 turns it off.").Default("30s").Advanced(),
			service.NewIntField(scannerFieldBatchSize).
				Description("The most events in one batch. Larger batches cost less per event and hold more memory: a structured Currents event takes about 4 KB.").Default(1000).Advanced(),
			structuredField(),
			service.NewAutoRetryNacksToggleField(),
		)
}

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

// inputConfig is the parsed configuration of the input.
type inputConfig struct {
	url, prefix    string
	sel            selection
	watch          bool
	pollInterval   time.Duration
	lateArrival    time.Duration
	ckptCache      string
	ckptInBucket   bool
	ckptKey        string
	ckptLease      time.Duration
	deleteDone     bool
	moveTo         string
	parallel       int
	readAttempts   int
	progressPeriod time.Duration
	structured     bool
	batchSize      int
}

func inputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*currentsInput, error) {
	var c inputConfig
	var err error
	str := func(dst *string, path ...string) {
		if err == nil {
			*dst, err = conf.FieldString(path...)
		}
	}
	dur := func(dst *time.Duration, name string) {
		if err == nil {
			*dst, err = conf.FieldDuration(name)
		}
	}
	num := func(dst *int, name string) {
		if err == nil {
			*dst, err = conf.FieldInt(name)
		}
	}
	flag := func(dst *bool, path ...string) {
		if err == nil {
			*dst, err = conf.FieldBool(path...)
		}
	}
	var since, until, shard string
	str(&c.url, inFieldURL)
	str(&c.prefix, inFieldPrefix)
	str(&since, inFieldSince)
	str(&until, inFieldUntil)
	str(&shard, inFieldShard)
	str(&c.ckptCache, inFieldCheckpoint, inFieldCheckpointCache)
	str(&c.ckptKey, inFieldCheckpoint, inFieldCheckpointKey)
	str(&c.moveTo, inFieldMoveTo)
	flag(&c.ckptInBucket, inFieldCheckpoint, inFieldCheckpointBucket)
	flag(&c.watch, inFieldWatch)
	flag(&c.deleteDone, inFieldDelete)
	flag(&c.structured, scannerFieldStructured)
	dur(&c.pollInterval, inFieldPollInterval)
	dur(&c.lateArrival, inFieldLateArrival)
	dur(&c.progressPeriod, inFieldProgress)
	if err == nil {
		c.ckptLease, err = conf.FieldDuration(inFieldCheckpoint, inFieldCheckpointLease)
	}
	num(&c.parallel, inFieldParallel)
	num(&c.readAttempts, inFieldReadAttempts)
	num(&c.batchSize, scannerFieldBatchSize)
	if err == nil {
		c.sel.include, err = conf.FieldStringList(inFieldInclude)
	}
	if err == nil {
		c.sel.exclude, err = conf.FieldStringList(inFieldExclude)
	}
	if err != nil {
		return nil, err
	}
	c.sel.include, c.sel.exclude = splitPatterns(c.sel.include), splitPatterns(c.sel.exclude)
	if c.sel.since, err = parseHour(since); err != nil {
		return nil, fmt.Errorf("%s: %w", inFieldSince, err)
	}
	if c.sel.until, err = parseHour(until); err != nil {
		return nil, fmt.Errorf("%s: %w", inFieldUntil, err)
	}
	if c.sel.shard, c.sel.shards, err = parseShard(shard); err != nil {
		return nil, err
	}
	for _, p := range append(append([]string{}, c.sel.include...), c.sel.exclude...) {
		if _, err := pathMatchCheck(p); err != nil {
			return nil, fmt.Errorf("event type pattern %q: %w", p, err)
		}
	}
	if c.prefix != "" && !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	if c.moveTo != "" && strings.HasPrefix(c.moveTo, c.prefix) {
		return nil, fmt.Errorf("%s %q is inside %s %q: moved objects would be read again", inFieldMoveTo, c.moveTo, inFieldPrefix, c.prefix)
	}
	if c.ckptCache != "" && c.ckptInBucket {
		return nil, fmt.Errorf("checkpoint: set cache or in_bucket, not both")
	}
	if c.ckptKey == "" {
		// Flat for caches (a file cache wants no slashes), under a folder in buckets.
		name := strings.ReplaceAll(strings.Trim(c.prefix, "/"), "/", "-")
		c.ckptKey = fmt.Sprintf("currents-connect-checkpoint-%s-shard-%d-of-%d", name, c.sel.shard, c.sel.shards)
		if !c.sel.since.IsZero() {
			c.ckptKey += "-since-" + c.sel.since.Format(DateHourLayout)
		}
		if !c.sel.until.IsZero() {
			c.ckptKey += "-until-" + c.sel.until.Format(DateHourLayout)
		}
		if c.ckptInBucket {
			c.ckptKey = "currents-connect/checkpoints/" + c.ckptKey + ".json"
		}
	}
	if c.ckptLease < time.Second {
		return nil, fmt.Errorf("checkpoint.%s must be at least 1s, got %v", inFieldCheckpointLease, c.ckptLease)
	}
	if c.parallel < 1 || c.readAttempts < 1 || c.batchSize < 1 {
		return nil, fmt.Errorf("%s, %s and %s must be at least 1", inFieldParallel, inFieldReadAttempts, scannerFieldBatchSize)
	}
	return newCurrentsInput(c, mgr), nil
}

// splitPatterns accepts comma-separated entries too, so that one
// environment variable can carry a whole list: [ "${BRAZE_EVENT_TYPES}" ].
func splitPatterns(entries []string) []string {
	var out []string
	for _, e := range entries {
		for _, p := range strings.Split(e, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// parseHour reads a queue hour bound; "" is no bound.
func parseHour(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{DateHourLayout, "2006-01-02", "2006-01-02T15", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(time.Hour), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an hour like 2026-01-31-05, 2026-01-31 or RFC 3339", s)
}

// bucketName is a bucket URL without its query, which may hold settings.
func bucketName(url string) string {
	name, _, _ := strings.Cut(url, "?")
	return name
}
