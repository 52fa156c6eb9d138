package brazecurrents

import "github.com/redpanda-data/benthos/v4/public/service"

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
	inFieldLateLookback     = "late_lookback"
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
	inFieldReadTimeout      = "read_timeout"
	inFieldProgress         = "progress_interval"
	inFieldSummary          = "summary_interval"
	inFieldNotifications    = "notifications"
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

Without `+"`watch`"+` the input makes one pass and ends once every event was acknowledged, with one summary line
at level warn (so that it shows at any level): objects read, corrupt and left for a later pass; events read,
acknowledged and not; how many had no `+"`external_user_id`"+`, which the mapping skips unless `+"`include_anonymous`"+`,
and how many of those had no `+"`user_id`"+` either (no user at all), which it skips in any case; and events by event type. With `+"`watch`"+`
it polls; a poll lists, per event type, the `+"`date=`"+` hours after the checkpoint's watermark up to now, so its
cost does not grow with the bucket's history and a poll delayed by a stall catches up on every hour. An event
type whose last listing found anything but `+"`date=<hour>/`"+` directories in it (another layout) is listed whole.
A directory under the prefix that cannot be listed (a policy denying one event type, say) is logged and
left out: the rest of the pass is read, the next passes list it again, sooner than `+"`poll_interval`"+` with
backoff, and none of its hours counts as done until one can; a run without `+"`watch`"+` ends only once every
directory was listed.
A run that watches (or reads notifications) never ends with the run summary: instead, every `+"`summary_interval`"+` (1h) it
logs one line saying what it did in that interval, even when that was nothing, at level info, or warn when
events awaiting acknowledgement got none through a whole interval (a stall: Segment down or refusing the key).

An object counts as done only after every event from it was acknowledged. Done objects are recorded in a
checkpoint (a cache resource, or an object in the bucket) that survives restarts: after a crash at any
moment, a restart re-reads at most the objects that were in flight. An hour counts as done (passes the
watermark) only after a listing that started `+"`late_arrival`"+` after the hour ended found every object in it
done. With `+"`since`"+` or `+"`until`"+` the default checkpoint key names the window, so a backfill window never
marks other hours as done. The checkpoint holds a lease: a second process on it waits until the first
stops or its lease expires. Replicas with `+"`shard: i/N`"+` split the objects between them by a hash of the key,
with no overlap and no coordination; the checkpoint records its window and shard, and a run over other
hours or of another shard refuses it. With the checkpoint in the bucket on its default key, a replica looks
at the other shards' checkpoints at start and at each lease renewal, and warns when for over 10 minutes
(twice the lease, if longer) a shard of its N has had no live lease, or a replica of another N has held one:
either leaves objects unread. Released and expired checkpoints, which a re-shard leaves behind, do not count.

With `+"`notifications`"+` (a queue of object-created notifications: S3 event notifications through SQS,
directly, through SNS or from EventBridge; GCS Pub/Sub notifications; Azure Event Grid through Service Bus)
the input lists nothing and keeps no checkpoint: it reads each object a notification names, if it is in the
bucket, under the prefix and selected, and acknowledges the notification once every event from the object
was acknowledged; a failed object nacks it back to the queue (one unreadable after every attempt after a
delay, twice as long as it has been failing, 10s to 15m, so that a dead-letter limit counts few deliveries
in an outage of the bucket). Any number of replicas consume one
subscription, as competing consumers. History is still read by a one-pass run without notifications.

An object that cannot be read is retried with backoff (`+"`read_attempts`"+`), resuming after the events it
already delivered, then left for the next pass. A corrupt object is reported with its key, counted, and
skipped (recorded as done) after delivering the events before the damage. A missing or forbidden bucket
fails at connection with a message saying so, and is retried: an outage passes.

What only a change of the config can fix stops the pipeline at start: a `+"`url`"+` without a scheme or with
one this build has no driver for, a `+"`file://`"+` directory that does not exist, a malformed pattern or hour,
an `+"`until`"+` before `+"`since`"+`, a `+"`move_done_to`"+` in `+"`prefix`"+`, a negative `+"`late_arrival`"+` or `+"`late_lookback`"+`, a `+"`poll_interval`"+`
of 0 or less with `+"`watch`"+`, a `+"`checkpoint`"+` or a `+"`shard`"+` other than 0/1 with `+"`notifications`"+`.
Event type patterns that match no known Currents event type are logged as warnings at start, once each,
and so is a listing that finds no Currents export under the prefix (once, until one does).
The input reads only `+"`.avro`"+` objects. Others under an `+"`event_type=`"+` directory (a copy a lifecycle rule
recompressed, `+"`.avro.gz`"+`; an unfinished upload, `+"`.avro.tmp`"+`; another tool's file) are counted and logged at
warn, how many and one key, once until a pass finds none; the input's own checkpoint, folder markers and
whatever lies outside the `+"`event_type=`"+` directories (other data may share the bucket) are passed over silently.
An object that cannot be read is logged at error when it starts failing, at debug at the passes that try
it again, and at info once it is read.

== Metadata

Besides the `+"`braze_currents`"+` scanner's metadata (`+"`braze_event_type`"+`, `+"`braze_integration_id`"+`,
`+"`braze_date_hour`"+`, `+"`braze_currents_version`"+`, `+"`braze_source`"+`, `+"`braze_record_index`"+`):

- `+"`braze_bucket`"+`: the bucket URL without its query.
- `+"`braze_key`"+`: the object key.
- `+"`braze_object_size`"+`: the object's size in bytes.
- `+"`braze_object_mod_time`"+`: the object's modification time, RFC 3339.

== Metrics

`+"`braze_currents_objects_found`"+`, `+"`braze_currents_objects_done`"+`, `+"`braze_currents_objects_corrupt`"+`,
`+"`braze_currents_objects_failed`"+` (not readable after every attempt), `+"`braze_currents_objects_late`"+` (objects found in an hour that had already
counted as done, within `+"`late_lookback`"+`: written late by Braze, read when found), `+"`braze_currents_listings_failed`"+` (listings of the prefix, or of a
directory under it, that failed: the pass lists again; `+"`/ready`"+` stays 200, as the input is running), `+"`braze_currents_objects_skipped`"+` (label
`+"`reason`"+`: `+"`compressed`"+`, `+"`partial`"+` or `+"`other`"+`; objects under an `+"`event_type=`"+` directory, of a selected type and
hour, not read for not being `+"`.avro`"+`, each counted once while listings keep finding it), `+"`braze_currents_events_read`"+` (label
`+"`event_type`"+`: the first 64 types outside Braze's known ones keep theirs, later ones and those over 128 bytes count as `+"`other`"+`), `+"`braze_currents_records_rejected`"+` (label `+"`reason`"+`: `+"`too_large`"+`, records over the
256 KiB record limit, sent on flagged with an error, without their content, while the rest of their object is read), `+"`braze_currents_checkpoint_saves`"+` (label
`+"`result`"+`), `+"`braze_currents_checkpoint_lag_seconds`"+` (how far the end of the newest queue hour with a done
object is behind now; with a checkpoint, from its start, the newest such hour before a restart included), `+"`braze_currents_checkpoint_lease_lapsed`"+`
(1 while no renewal of the checkpoint's lease has landed for a whole lease and no object starts, until this process claims it again; else 0, a
standby's included), `+"`braze_currents_shards_missing`"+` and `+"`braze_currents_shards_mismatched`"+` (shards of this
replica's N with no running replica, and running replicas of another N, past the grace; set with the checkpoint
in the bucket on its default key), `+"`braze_currents_notifications_held_back`"+` (with `+"`notifications`"+`: objects that
cannot be read whose notifications are held before they are sent back; at 2 a reader the input receives no more),
`+"`braze_currents_notification_receives_failed`"+` (receives from the subscription that failed; each opens it again after a
backoff) and `+"`braze_currents_notifications_malformed`"+` (messages that are no object notification the input knows,
acknowledged unread).

The counters are exported at 0 from start, with each of their label values but `+"`event_type`"+`'s (which appear
with their first event), so that `+"`rate()`"+` and `+"`increase()`"+` see their first counts.
`).
		Fields(
			service.NewStringField(inFieldURL).
				Description("The bucket: `s3://bucket?region=eu-west-1`, `gs://bucket`, `azblob://container`, `file:///path/to/dir` (an existing directory; `file://./dir` is relative to the working directory). A cloud URL names the bucket only: a path after it is refused at start, the prefix goes in `prefix`. Credentials come from each cloud's usual chain (environment, shared config, workload identity).").
				Example("s3://my-currents-bucket?region=us-east-1").Example("gs://my-currents-bucket").Example("file:///data/currents").
				Secret(), // a URL may carry a password or a token (a SAS signature): echo scrubs it
			service.NewStringField(inFieldNotifications).
				Description("A subscription of object-created notifications, as a gocloud.dev/pubsub URL: `awssqs://sqs.<region>.amazonaws.com/<account>/<queue>?region=<region>` (S3 → SQS, or through SNS or EventBridge), `gcppubsubv2://<project>/<subscription>` (GCS → Pub/Sub), `azuresb://<topic>?subscription=<name>` (Azure Event Grid → Service Bus). When set, the bucket is not listed and no checkpoint is kept: the queue holds what is pending, and replicas share it with no `shard`. A `file://` bucket matches notifications whose bucket is its directory's base name.").
				Example("awssqs://sqs.us-east-1.amazonaws.com/123456789012/currents-created?region=us-east-1").Example("gcppubsubv2://my-project/currents-created").Default("").
				Secret(),
			service.NewStringField(inFieldPrefix).
				Description("The prefix Currents writes under (Braze's default is `currents`).").Default("currents"),
			service.NewStringListField(inFieldInclude).
				Description("Event types to read, as glob patterns (entries may hold several, comma-separated). Empty reads the 50 types Braze's Segment connector sends (the types `bloblang/currents_to_segment.blobl` maps), so the others are never listed or downloaded; `*` reads every type.").
				Example([]string{"users.messages.email.*", "users.campaigns.Conversion"}).Default([]string{}),
			service.NewStringListField(inFieldExclude).
				Description("Event types to skip, as glob patterns; applied after `include_event_types`.").Default([]string{}),
			service.NewStringField(inFieldSince).
				Description("The first queue hour (`date=` partition) to read: `2026-01-31-05`, `2026-01-31T05` or RFC 3339; a day, `2026-01-31`, starts at its hour 00. Empty: from the beginning.").Default(""),
			service.NewStringField(inFieldUntil).
				Description("The last queue hour to read, inclusive, in the same forms; a day, `2026-01-31`, ends after its hour 23 (the whole day is read), so `until: 2026-01-31` and then `since: 2026-02-01` leave no hour out. Empty: no end.").Default(""),
			service.NewBoolField(inFieldWatch).
				Description("Keep polling for new objects instead of ending after one pass.").Default(false),
			service.NewDurationField(inFieldPollInterval).
				Description("How often to poll in watch mode; it must be positive. While a directory under the prefix cannot be listed, the next poll comes sooner, with backoff up to this interval.").Default("1m"),
			service.NewDurationField(inFieldLateArrival).
				Description("How long after its hour ends a `date=` partition may still receive files. An hour counts as done only after a listing that started this long after the hour ended found every object in it done. It may be 0 (no file is ever written into an hour after it ends), not negative: that would count hours as done before they end.").Default("2h").Advanced(),
			service.NewDurationField(inFieldLateLookback).
				Description("How far back from now the hours already counted as done are listed again, once an hour per event type, for late files: objects Braze wrote into an hour after it settled (a delay longer than `late_arrival`, or a local clock ahead). The checkpoint remembers the objects done in those hours by an 8-byte hash of each key; an object there it does not remember is counted in `braze_currents_objects_late`, logged at warn and read. 0 turns it off: such a file is never read.").Default("24h").Advanced(),
			service.NewObjectField(inFieldCheckpoint,
				service.NewStringField(inFieldCheckpointCache).
					Description("Keep the checkpoint in this cache resource, defined under `cache_resources` in the config or in a resources file given with `-r`. A label no cache resource has stops the input at start.").Default(""),
				service.NewBoolField(inFieldCheckpointBucket).
					Description("Keep the checkpoint in the bucket itself, as two objects written in turn, the key with `.a` and `.b` before its extension (needs read and write access to both: `currents-connect/checkpoints/` with the default key).").Default(false),
				service.NewStringField(inFieldCheckpointKey).
					Description("The cache key or object key. Empty: `currents-connect-checkpoint-<prefix>-shard-<i>-of-<n>`, plus `-since-<hour>` when `since` is set and `-until-<hour>` when `until` is, so that a backfill window keeps a checkpoint of its own (in a bucket, under `currents-connect/checkpoints/`, with `.json`). Use a new key to replay from scratch.").Default(""),
				service.NewDurationField(inFieldCheckpointLease).
					Description("How long the checkpoint stays held by this process if it stops renewing it (a crash). Another process started on the same checkpoint waits, logging who holds it, until this one stops or the lease expires; a process that finds its checkpoint taken over stops. Renewed every third of it; a call to the checkpoint's store waits at most a third of it too (or `read_timeout`, if shorter), so that a renewal whose call hangs is cut in time for the next to land before the lease runs out.").Default("1m").Advanced(),
			).Description("Where progress is kept. With neither `cache` nor `in_bucket`, nothing is kept and a restart reads every object again."),
			service.NewBoolField(inFieldDelete).
				Description("Delete each object once done. A corrupt one (recorded as done after the events before its damage) is kept at its key for an operator, with an error naming it: the events after the damage were never sent.").Default(false).Advanced(),
			service.NewStringField(inFieldMoveTo).
				Description("Move each object once done to this prefix, keeping the rest of its key; a corrupt one is kept at its key, as with `delete_done`. It must be outside `prefix`: the prefix itself (with or without its slash) or a directory under it is refused at start.").Default("").Advanced(),
			service.NewStringField(inFieldShard).
				Description("This replica's share of the objects, `i/N`: N replicas with shards 0/N … N-1/N read every object exactly once between them. The checkpoint records it, and a run of another shard refuses that checkpoint (its watermarks count only its own shard's objects as done).").Default("0/1"),
			service.NewIntField(inFieldParallel).
				Description("How many objects are downloaded and decoded at once. Each holds one Avro block and at most one batch of decoded events in memory; the events in flight downstream add to that.").Default(4),
			service.NewIntField(inFieldReadAttempts).
				Description("How many times an unreadable object is tried in a pass before it is left for the next one. With `notifications`, how many times at each delivery before its notification is sent back to the queue, which delivers it again: held first, twice as long as the object has been failing (10s to 15m; sent back at once when the input stops), so that a queue's dead-letter limit (Service Bus's MaxDeliveryCount, 10 by default) counts 10 deliveries in about 85 minutes of failure, then 4 an hour, not 10 in a minute and a half.").Default(5).Advanced(),
			service.NewDurationField(inFieldReadTimeout).
				Description("How long a call to the bucket may wait for it: opening an object or one read of it (the object is then read again from the event it reached, on a new connection), a page of a listing (listed again), the checkpoint's read or write (tried again; at most a third of `checkpoint.lease`). A connection gone silent (a NAT or load balancer that forgot it) would otherwise hold the call until TCP gives up, about 15 minutes, or for ever behind a hung proxy. Time spent waiting for the pipeline to take events does not count. 0: never.").Default("1m").Advanced(),
			service.NewDurationField(inFieldProgress).
				Description("How often a progress summary is logged while objects are being read; 0 turns it off.").Default("30s").Advanced(),
			service.NewDurationField(inFieldSummary).
				Description("With `watch` or `notifications`, how often to log what the input did since the last such line: objects read, corrupt, left for a later pass and in flight; events read, acknowledged and not; how many had no `external_user_id`. Logged even when nothing happened, at level warn when events awaiting acknowledgement got none for a whole interval (a stall). 0 turns it off.").Default("1h").Advanced(),
			service.NewIntField(scannerFieldBatchSize).
				Description("The most events in one batch. Larger batches cost less per event and hold more memory: a structured Currents event takes about 4 KB.").Default(1000).Advanced(),
			structuredField(),
			service.NewAutoRetryNacksToggleField(),
		)
}
