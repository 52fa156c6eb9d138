package brazecurrents

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/pubsub"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
	"github.com/currents-connect/currents-connect/internal/redact"
)

// inputConfig is the parsed configuration of the braze_currents input.
type inputConfig struct {
	url, prefix    string
	notifications  string // a subscription URL: notification mode
	sel            selection
	watch          bool
	pollInterval   time.Duration
	lateArrival    time.Duration
	lateLookback   time.Duration
	ckptCache      string
	ckptInBucket   bool
	ckptKey        string
	ckptLease      time.Duration
	deleteDone     bool
	moveTo         string
	parallel       int
	readAttempts   int
	readTimeout    time.Duration
	progressPeriod time.Duration
	summaryPeriod  time.Duration
	structured     bool
	batchSize      int
}

func inputConfigFromParsed(conf *service.ParsedConfig) (c inputConfig, err error) {
	if c.url, err = conf.FieldString(inFieldURL); err != nil {
		return c, err
	}
	if c.notifications, err = conf.FieldString(inFieldNotifications); err != nil {
		return c, err
	}
	if c.prefix, err = conf.FieldString(inFieldPrefix); err != nil {
		return c, err
	}
	if c.prefix != "" && !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	var include, exclude []string
	if include, err = conf.FieldStringList(inFieldInclude); err != nil {
		return c, err
	}
	if c.sel.include = splitPatterns(include); len(c.sel.include) == 0 {
		// The 50 types the mapping sends; a config passes an unset
		// BRAZE_EVENT_TYPES as [""], which means them too.
		c.sel.include = segmentEventTypes
	}
	if exclude, err = conf.FieldStringList(inFieldExclude); err != nil {
		return c, err
	}
	c.sel.exclude = splitPatterns(exclude)
	var since, until, shard string
	if since, err = conf.FieldString(inFieldSince); err != nil {
		return c, err
	}
	if c.sel.since, _, err = parseHours(since); err != nil {
		return c, fmt.Errorf("%s: %w", inFieldSince, err)
	}
	if until, err = conf.FieldString(inFieldUntil); err != nil {
		return c, err
	}
	if _, c.sel.until, err = parseHours(until); err != nil {
		return c, fmt.Errorf("%s: %w", inFieldUntil, err)
	}
	if shard, err = conf.FieldString(inFieldShard); err != nil {
		return c, err
	}
	if c.sel.shard, c.sel.shards, err = parseShard(shard); err != nil {
		return c, err
	}
	if c.watch, err = conf.FieldBool(inFieldWatch); err != nil {
		return c, err
	}
	if c.pollInterval, err = conf.FieldDuration(inFieldPollInterval); err != nil {
		return c, err
	}
	if c.lateArrival, err = conf.FieldDuration(inFieldLateArrival); err != nil {
		return c, err
	}
	if c.lateLookback, err = conf.FieldDuration(inFieldLateLookback); err != nil {
		return c, err
	}
	if c.ckptCache, err = conf.FieldString(inFieldCheckpoint, inFieldCheckpointCache); err != nil {
		return c, err
	}
	if c.ckptInBucket, err = conf.FieldBool(inFieldCheckpoint, inFieldCheckpointBucket); err != nil {
		return c, err
	}
	if c.ckptKey, err = conf.FieldString(inFieldCheckpoint, inFieldCheckpointKey); err != nil {
		return c, err
	}
	if c.ckptLease, err = conf.FieldDuration(inFieldCheckpoint, inFieldCheckpointLease); err != nil {
		return c, err
	}
	if c.deleteDone, err = conf.FieldBool(inFieldDelete); err != nil {
		return c, err
	}
	if c.moveTo, err = conf.FieldString(inFieldMoveTo); err != nil {
		return c, err
	}
	if c.parallel, err = conf.FieldInt(inFieldParallel); err != nil {
		return c, err
	}
	if c.readAttempts, err = conf.FieldInt(inFieldReadAttempts); err != nil {
		return c, err
	}
	if c.readTimeout, err = conf.FieldDuration(inFieldReadTimeout); err != nil {
		return c, err
	}
	if c.readTimeout < 0 {
		return c, fmt.Errorf("%s must not be negative (0: reads are never timed out), got %v", inFieldReadTimeout, c.readTimeout)
	}
	if c.progressPeriod, err = conf.FieldDuration(inFieldProgress); err != nil {
		return c, err
	}
	if c.summaryPeriod, err = conf.FieldDuration(inFieldSummary); err != nil {
		return c, err
	}
	if c.batchSize, err = conf.FieldInt(scannerFieldBatchSize); err != nil {
		return c, err
	}
	if c.structured, err = conf.FieldBool(scannerFieldStructured); err != nil {
		return c, err
	}
	if err = c.validate(); err != nil {
		return c, err
	}
	if c.ckptKey == "" {
		c.ckptKey = c.defaultCheckpointKey()
	}
	return c, nil
}

// validate refuses what only a change of the config can fix, so that it
// fails at start rather than in a retry loop.
func (c *inputConfig) validate() error {
	if err := checkBucketURL(c.url); err != nil {
		return err
	}
	for _, p := range c.sel.include {
		if err := checkPattern(inFieldInclude, p); err != nil {
			return err
		}
	}
	for _, p := range c.sel.exclude {
		if err := checkPattern(inFieldExclude, p); err != nil {
			return err
		}
	}
	if !c.sel.since.IsZero() && !c.sel.until.IsZero() && c.sel.until.Before(c.sel.since) {
		return fmt.Errorf("%s %s is before %s %s: the window holds no hour", inFieldUntil,
			c.sel.until.Format(DateHourLayout), inFieldSince, c.sel.since.Format(DateHourLayout))
	}
	if err := c.checkMoveTo(); err != nil {
		return err
	}
	if err := c.checkPrefix(); err != nil {
		return err
	}
	if c.lateArrival < 0 {
		return fmt.Errorf("%s must not be negative, got %v: hours would count as done before they end, and files written into them later would never be read",
			inFieldLateArrival, c.lateArrival)
	}
	if c.lateLookback < 0 {
		return fmt.Errorf("%s must not be negative (0 turns the lookback off), got %v", inFieldLateLookback, c.lateLookback)
	}
	if c.summaryPeriod < 0 {
		return fmt.Errorf("%s must not be negative (0 turns the summaries off), got %v", inFieldSummary, c.summaryPeriod)
	}
	if c.watch && c.pollInterval <= 0 {
		return fmt.Errorf("%s must be positive with %s, got %v", inFieldPollInterval, inFieldWatch, c.pollInterval)
	}
	if c.ckptCache != "" && c.ckptInBucket {
		return fmt.Errorf("%s: set %s or %s, not both", inFieldCheckpoint, inFieldCheckpointCache, inFieldCheckpointBucket)
	}
	if c.ckptLease < time.Second {
		return fmt.Errorf("%s.%s must be at least 1s, got %v", inFieldCheckpoint, inFieldCheckpointLease, c.ckptLease)
	}
	if err := c.validateNotifications(); err != nil {
		return err
	}
	if c.parallel < 1 || c.readAttempts < 1 || c.batchSize < 1 {
		return fmt.Errorf("%s, %s and %s must be at least 1", inFieldParallel, inFieldReadAttempts, scannerFieldBatchSize)
	}
	return nil
}

// checkMoveTo refuses a move_done_to that names the prefix or a directory
// inside it, however spelt ("currents", "currents/", "./currents"): a done
// object would be copied onto its own key and then deleted, or read again.
func (c *inputConfig) checkMoveTo() error {
	if c.moveTo == "" {
		return nil
	}
	dir := func(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") + "/" }
	to, prefix := dir(c.moveTo), dir(c.prefix)
	switch {
	case prefix == "/": // an empty prefix: the whole bucket
		return fmt.Errorf("%s %q needs a %s: with none, every key of the bucket is read, moved objects too", inFieldMoveTo, c.moveTo, inFieldPrefix)
	case to == prefix:
		return fmt.Errorf("%s %q is %s %q itself: each done object would be copied onto its own key and then deleted", inFieldMoveTo, c.moveTo, inFieldPrefix, c.prefix)
	case strings.HasPrefix(to, prefix):
		return fmt.Errorf("%s %q is inside %s %q: moved objects would be read again", inFieldMoveTo, c.moveTo, inFieldPrefix, c.prefix)
	}
	return nil
}

// checkPrefix refuses, when walking the bucket, a prefix inside an event
// type's directory: the walk learns an export's partitions from the
// event_type= directories below the prefix, so it would never settle an hour
// there, keeping every object done in the checkpoint and listing every hour
// at every poll. Notifications name their objects, and take any prefix.
func (c *inputConfig) checkPrefix() error {
	if c.notifications != "" {
		return nil
	}
	for _, part := range strings.Split(c.prefix, "/") {
		if eventType, ok := strings.CutPrefix(part, "event_type="); ok {
			return fmt.Errorf("%s %q is inside an event type's directory: the input finds the event_type= directories below its %s and could never settle an hour there; set %s to the directory above it and %s to %q",
				inFieldPrefix, c.prefix, inFieldPrefix, inFieldPrefix, inFieldInclude, eventType)
		}
	}
	return nil
}

// validateNotifications refuses what notification mode cannot do: replicas
// on one subscription share its messages, so a shard would drop the others'
// objects; and the queue, not a checkpoint, holds what is pending.
func (c *inputConfig) validateNotifications() error {
	if c.notifications == "" {
		return nil
	}
	u, err := url.Parse(c.notifications)
	if err != nil {
		return redact.ParseError(inFieldNotifications, err)
	}
	mux := pubsub.DefaultURLMux()
	if !mux.ValidSubscriptionScheme(u.Scheme) {
		return fmt.Errorf("%s %q: unknown scheme %q, this build opens %s", inFieldNotifications, bucketName(c.notifications), u.Scheme,
			strings.Join(mux.SubscriptionSchemes(), ", "))
	}
	if c.sel.shards != 1 {
		return fmt.Errorf("%s cannot be used with %s: replicas on one subscription share its notifications, each read by one of them, so leave %s at 0/1",
			inFieldShard, inFieldNotifications, inFieldShard)
	}
	if c.checkpointed() {
		return fmt.Errorf("%s cannot be used with %s: the queue holds the objects still to read, a notification is acknowledged once its object is done",
			inFieldCheckpoint, inFieldNotifications)
	}
	return nil
}

// checkpointed says whether a checkpoint is kept (in a cache or in the
// bucket), as checkpointStore chooses its store.
func (c *inputConfig) checkpointed() bool { return c.ckptCache != "" || c.ckptInBucket }

// defaultCheckpointKey names the checkpoint after the prefix, the shard and
// the window, so that a backfill window keeps a checkpoint of its own.
func (c *inputConfig) defaultCheckpointKey() string {
	head, tail := c.checkpointKeyAround()
	return shardCheckpointKey(head, tail, c.sel.shard, c.sel.shards)
}

// shardCheckpointKey is the default checkpoint key of shard i/N, around
// which checkpointKeyAround gives the rest.
func shardCheckpointKey(head, tail string, shard, shards int) string {
	return fmt.Sprintf("%s-shard-%d-of-%d%s", head, shard, shards, tail)
}

// checkpointKeyAround is the default checkpoint key before and after its
// "-shard-i-of-N": the other shards' checkpoints differ only there.
func (c *inputConfig) checkpointKeyAround() (head, tail string) {
	// Flat for caches (a file cache wants no slashes), under a folder in buckets.
	name := strings.ReplaceAll(strings.Trim(c.prefix, "/"), "/", "-")
	head = "currents-connect-checkpoint-" + name
	if !c.sel.since.IsZero() {
		tail += "-since-" + c.sel.since.Format(DateHourLayout)
	}
	if !c.sel.until.IsZero() {
		tail += "-until-" + c.sel.until.Format(DateHourLayout)
	}
	if c.ckptInBucket {
		head, tail = "currents-connect/checkpoints/"+head, tail+".json"
	}
	return head, tail
}

// checkBucketURL refuses a url that no retry can open (see bucketurl.Check).
func checkBucketURL(raw string) error { return bucketurl.Check(inFieldURL, raw) }

// checkLocalDir refuses a file:// url of a directory that does not exist.
func checkLocalDir(ctx context.Context, raw string) error {
	return bucketurl.CheckLocalDir(ctx, inFieldURL, raw)
}

// checkPattern refuses a malformed glob pattern.
func checkPattern(field, p string) error {
	if _, err := path.Match(p, "x"); err != nil {
		return fmt.Errorf("%s: event type pattern %q: %w", field, p, err)
	}
	return nil
}

// warnUnknownTypes names, once each, the patterns of field that match no
// Currents event type: a typo there reads or skips nothing, silently.
func warnUnknownTypes(log *service.Logger, field string, patterns []string) {
	for _, p := range unknownPatterns(patterns) {
		log.Warnf("%s: %q matches none of the %d Currents event types this version knows (like users.messages.email.Send): check its spelling; it takes effect only on types Braze adds later",
			field, p, len(knownEventTypes))
	}
}

// parseShard reads "i/N".
func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q must be i/N with 0 <= i < N, like 0/3", s)
	}
	return i, n, nil
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

// parseHours reads a queue hour bound ("" is none) as the first and the last
// hour it names: a day names its 24, so that since: <day> starts at its hour
// 00 and until: <day> ends after its hour 23, and a window until a day
// followed by one since the next reads every hour between them.
func parseHours(s string) (first, last time.Time, err error) {
	if s == "" {
		return time.Time{}, time.Time{}, nil
	}
	if day, err := time.Parse("2006-01-02", s); err == nil {
		return day, day.Add(23 * time.Hour), nil
	}
	for _, layout := range []string{DateHourLayout, "2006-01-02T15", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			hour := t.UTC().Truncate(time.Hour)
			return hour, hour, nil
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not an hour like 2026-01-31-05, 2026-01-31 or RFC 3339", s)
}

// bucketName is a bucket URL without its query, which may hold settings.
func bucketName(url string) string { return bucketurl.Name(url) }
