package brazecurrents

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// The checkpoint records its shard, and a run of another shard refuses it
// as a run over other hours refuses another window's: a watermark counts
// the hours before it as done only for the objects its writer read. With
// an explicit checkpoint.key (CURRENTS_CHECKPOINT_KEY), scaling shards 0/2
// and 1/2 down to one replica (0/1) on 0/2's key would otherwise skip
// shard 1's objects unread.
func TestInputRefusesTheCheckpointOfAnotherShard(t *testing.T) {
	url, written := fileTree(t, fixtures.TreeOptions{FilesPerType: 6, RecordsPerFile: 2, Seed: 15,
		EventTypes: []string{emailSend}})
	other := selection{shard: 1, shards: 2}
	shardOne := ids(written, func(w fixtures.Written) bool { return other.ownsKey(w.Key) })
	if len(shardOne) == 0 || len(shardOne) == len(ids(written, nil)) {
		t.Fatal("the fixture's objects should fall in both shards")
	}
	conf := "url: " + url + "\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  key: currents-connect/ck.json"
	s, got := streamOf(t, conf+"\nshard: 0/2", "")
	runToEnd(t, s)
	if got.total() != len(ids(written, nil))-len(shardOne) {
		t.Fatalf("shard 0/2 read %d events", got.total())
	}
	for _, shard := range []string{"0/1", "1/2"} {
		_, err := connectClockRun(t, conf+"\nshard: "+shard, time.Now())
		if err == nil || !strings.Contains(err.Error(), "written by shard 0/2, and this run is shard "+shard) {
			t.Fatalf("shard %s on shard 0/2's checkpoint: %v", shard, err)
		}
	}
}

// A document written before the shard was recorded has none. A single
// replica (0/1) takes it, as before; so does a shard on its default key,
// which names the shard. A shard on an explicit key cannot tell whose
// watermarks it holds, and refuses it rather than risk skipping objects
// unread.
func TestInputCheckpointWithoutAShard(t *testing.T) {
	url, _ := fileTree(t, fixtures.TreeOptions{FilesPerType: 6, RecordsPerFile: 2, Seed: 15,
		EventTypes: []string{emailSend}})
	conf := "url: " + url + "\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true"
	explicit := conf + "\n  key: currents-connect/ck.json"
	for _, c := range []struct{ conf, key string }{
		{conf + "\nshard: 1/2", "currents-connect/checkpoints/currents-connect-checkpoint-currents-shard-1-of-2.json"},
		{explicit + "\nshard: 0/1", "currents-connect/ck.json"},
	} {
		s, got := streamOf(t, c.conf, "")
		runToEnd(t, s)
		if got.total() == 0 {
			t.Fatalf("%q read nothing", c.conf)
		}
		unrecordShard(t, url, c.key)
		s, got = streamOf(t, c.conf, "")
		runToEnd(t, s)
		if got.total() != 0 {
			t.Fatalf("%q did not take its checkpoint written without a shard: it read %d events again", c.conf, got.total())
		}
	}
	// The run that took it wrote it again, with its shard.
	unrecordShard(t, url, "currents-connect/ck.json")
	_, err := connectClockRun(t, explicit+"\nshard: 1/2", time.Now())
	if err == nil || !strings.Contains(err.Error(), "records no shard") || !strings.Contains(err.Error(), `add "shard":"1/2"`) {
		t.Fatalf("shard 1/2 on an explicit key's checkpoint without a shard: %v", err)
	}
}

// unrecordShard drops the shard from the checkpoint's slots at key, as a
// version that did not record it wrote them.
func unrecordShard(t *testing.T, url, key string) {
	t.Helper()
	ctx := context.Background()
	bucket, err := blob.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	for _, slot := range newSlotted(&bucketStore{bucket: bucket}, key, nil).keys {
		raw, err := bucket.ReadAll(ctx, slot)
		if gcerrors.Code(err) == gcerrors.NotFound {
			continue
		}
		var doc map[string]json.RawMessage
		if err == nil {
			err = json.Unmarshal(raw, &doc)
		}
		if err != nil {
			t.Fatal(err)
		}
		if doc["shard"] == nil {
			t.Fatalf("slot %s records no shard: %s", slot, raw)
		}
		delete(doc, "shard")
		if raw, err = json.Marshal(doc); err == nil {
			err = bucket.WriteAll(ctx, slot, raw, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
