package brazecurrents

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/internal/bucketurl"
)

// shardGrace is how long a shard may go without a running replica, or a
// replica of another shard count may run, before it is warned about: a
// rolling update, a re-shard or a rescheduled pod passes within it.
const shardGrace = 10 * time.Minute

// shardCheck looks at the other shards' checkpoints beside this one's in the
// bucket. Each shard keeps its own checkpoint and lease, so replicas given
// different shard counts (0/2 and 1/3) or not one per shard (only 0/2)
// leave objects unread without anything failing. Only live leases count as
// running replicas: a re-shard leaves the old count's checkpoints behind,
// released or expired, and they must not warn.
type shardCheck struct {
	bucket        *blob.Bucket
	where         string         // the bucket, for messages
	listPrefix    string         // the default key up to the shard's number
	slot          *regexp.Regexp // the rest of a slot's key: i, N
	head, tail    string         // the default key around "-shard-i-of-N"
	shard, shards int
	watch         bool // a one-pass run may end: a released checkpoint is a shard that ran
	grace         time.Duration
	timeout       time.Duration // each call to the bucket (read_timeout)
	clock         clockwork.Clock
	log           *service.Logger
	stats         *inputStats
	kick          chan struct{}
	checked       func(at time.Time) // tests: after each check
	fresh         bool               // this shard's checkpoint is new: said once if another count's is there

	// run's own
	missingSince     map[int]time.Time    // shard of this count -> since when it has no replica
	otherSince       map[string]time.Time // i/M of another count -> since when it is held
	warnedMissing    string               // the shards last warned about, "" for none
	warnedOther      string
	warnedList       bool
	listFailingSince time.Time // since when every listing failed
}

// newShardCheck checks the shards of in's default checkpoint key in bucket,
// once at start and then whenever poked (each lease renewal).
func newShardCheck(in *currentsInput, bucket *blob.Bucket) *shardCheck {
	head, tail := in.conf.checkpointKeyAround()
	c := &shardCheck{bucket: bucket, where: bucketName(in.conf.url), listPrefix: head + "-shard-", head: head, tail: tail,
		slot:  regexp.MustCompile(`^(\d+)-of-(\d+)` + regexp.QuoteMeta(strings.TrimSuffix(tail, ".json")) + `\.[ab]\.json$`),
		shard: in.conf.sel.shard, shards: in.conf.sel.shards, watch: in.conf.watch,
		grace: max(shardGrace, 2*in.conf.ckptLease), timeout: in.conf.readTimeout, clock: in.clock, log: in.log, stats: in.stats,
		kick: make(chan struct{}, 1), checked: in.afterShardCheck,
		missingSince: map[int]time.Time{}, otherSince: map[string]time.Time{}}
	c.poke()
	return c
}

func (c *shardCheck) poke() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *shardCheck) run(ctx context.Context) {
	for {
		select {
		case <-c.kick:
			c.check(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// peerShard is what another shard's checkpoint says of its replica.
type peerShard struct {
	shard, shards int
	live          bool   // a lease that has not expired: a replica runs it
	released      bool   // no lease: its replica stopped cleanly, or a one-pass run ended
	host          string // the lease holder's, for messages
}

func (p peerShard) name() string { return fmt.Sprintf("%d/%d", p.shard, p.shards) }

// check warns, once per condition, of the shards of this count that have
// had no running replica for the grace, and of replicas of another count
// that have run for as long.
func (c *shardCheck) check(ctx context.Context) {
	now := c.clock.Now()
	if c.checked != nil {
		defer c.checked(now)
	}
	var peers map[string]peerShard
	var err error
	// A listing may fail for a moment: fileblob's fails when a write's
	// temporary file (this shard's own checkpoint) goes during it.
	for range 3 {
		if peers, err = c.peers(ctx, now); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		if c.listFailingSince.IsZero() {
			c.listFailingSince = now
		}
		if !c.warnedList && ctx.Err() == nil && now.Sub(c.listFailingSince) >= c.grace {
			c.warnedList = true
			c.log.Warnf("Cannot look at the other shards' checkpoints in %s for over %v, so replicas with missing or mismatched shards go unnoticed: %v", c.where, c.grace, err)
		}
		return
	}
	c.warnedList, c.listFailingSince = false, time.Time{}
	if c.fresh {
		c.fresh = false
		c.reportFresh(peers)
	}
	running := []string{peerShard{shard: c.shard, shards: c.shards}.name() + " (this replica)"}
	var missing, other []string
	otherSince := map[string]time.Time{}
	for i := range c.shards {
		if i == c.shard {
			continue
		}
		name := peerShard{shard: i, shards: c.shards}.name()
		p, ok := peers[name]
		if ok && (p.live || p.released && !c.watch) {
			delete(c.missingSince, i)
			continue
		}
		since, ok := c.missingSince[i]
		if !ok {
			since, c.missingSince[i] = now, now
		}
		if now.Sub(since) >= c.grace {
			missing = append(missing, name)
		}
	}
	for _, p := range peers {
		if !p.live {
			continue
		}
		running = append(running, p.name()+" (on "+p.host+")")
		if p.shards == c.shards {
			continue
		}
		since, ok := c.otherSince[p.name()]
		if !ok {
			since = now
		}
		otherSince[p.name()] = since
		if now.Sub(since) >= c.grace {
			other = append(other, p.name()+" (on "+p.host+")")
		}
	}
	c.otherSince = otherSince
	slices.Sort(running[1:])
	slices.Sort(other)
	c.stats.shardsChecked(len(missing), len(other))
	c.report(missing, other, running)
}

// report logs a condition once, when it starts or changes, and when it ends.
func (c *shardCheck) report(missing, other, running []string) {
	if m := strings.Join(missing, ", "); m != c.warnedMissing {
		switch {
		case m != "":
			c.log.Warnf("Shards %s have had no running replica for over %v (no live lease on their checkpoints in %s): the objects whose keys hash to them are not read. "+
				"Running: %s. Run one replica per shard, 0/%d to %d/%d, or give every replica the same smaller N (a new N starts new checkpoints)",
				m, c.grace, c.where, strings.Join(running, ", "), c.shards, c.shards-1, c.shards)
		case c.warnedMissing != "":
			c.log.Infof("Every shard of %d has a running replica again", c.shards)
		}
		c.warnedMissing = m
	}
	if o := strings.Join(other, ", "); o != c.warnedOther {
		switch {
		case o != "":
			c.log.Warnf("Replicas run with another shard count for over %v: shards %s hold live leases on their checkpoints in %s, and this replica is shard %d/%d, "+
				"so objects whose keys hash to no running shard of either count are not read. Running: %s. Give every replica the same N, one per shard "+
				"(a re-shard passes once the replicas of the old count have stopped)",
				c.grace, o, c.where, c.shard, c.shards, strings.Join(running, ", "))
		case c.warnedOther != "":
			c.log.Infof("No replica of another shard count holds a live lease any more")
		}
		c.warnedOther = o
	}
}

// reportFresh warns, when this shard starts a new checkpoint, of the
// checkpoints of another shard count beside it: a change of N (1 to 2, say)
// starts new checkpoints, which read the whole history again and send it to
// Segment again, while the operator may expect the new count to go on
// where the old one stopped.
func (c *shardCheck) reportFresh(peers map[string]peerShard) {
	var old []string
	for _, p := range peers {
		if p.shards != c.shards {
			old = append(old, p.name())
		}
	}
	if len(old) == 0 {
		return
	}
	slices.Sort(old)
	c.log.Warnf("Shard %d/%d starts a new checkpoint in %s beside the checkpoints of shards %s, of another shard count: progress does not carry over from one shard count to another, so this replica reads every object of its shard from the start "+
		"and sends its events to Segment again (Segment drops by messageId only the calls it saw within about 24 hours). To send only newer hours, start every replica of the new count with since (CURRENTS_SINCE) at the first hour to send",
		c.shard, c.shards, c.where, strings.Join(old, ", "))
}

// peers reads the other shards' checkpoints of this prefix and window, by
// "i/N". A checkpoint that cannot be read is left out: its replica, if any,
// fails on it too.
func (c *shardCheck) peers(ctx context.Context, now time.Time) (map[string]peerShard, error) {
	peers := map[string]peerShard{}
	it := c.bucket.List(&blob.ListOptions{Prefix: c.listPrefix})
	for {
		pageCtx, done := callCtx(ctx, c.timeout)
		obj, err := it.Next(pageCtx)
		if err = done(err); err == io.EOF {
			return peers, nil
		}
		if err != nil {
			return nil, bucketurl.Redact(err)
		}
		m := c.slot.FindStringSubmatch(strings.TrimPrefix(obj.Key, c.listPrefix))
		if m == nil {
			continue // another window's, or not a checkpoint
		}
		p := peerShard{}
		p.shard, _ = strconv.Atoi(m[1])
		p.shards, _ = strconv.Atoi(m[2])
		if _, seen := peers[p.name()]; seen || p.shard == c.shard && p.shards == c.shards || p.shard >= p.shards {
			continue
		}
		key := shardCheckpointKey(c.head, c.tail, p.shard, p.shards)
		raw, err := newSlotted(&bucketStore{bucket: c.bucket, name: c.where, timeout: c.timeout}, key, nil).load(ctx, false)
		var doc struct{ Owner *ownerStamp }
		if err != nil || raw == nil || json.Unmarshal(raw, &doc) != nil {
			continue
		}
		if o := doc.Owner; o != nil {
			p.live, p.host = now.Before(o.Expires), o.Host
		}
		p.released = doc.Owner == nil
		peers[p.name()] = p
	}
}
