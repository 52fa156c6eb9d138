package bucket

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// A machine that crashes after a batch was acknowledged must still hold its
// object: in a directory, the object's data is synced before the rename that
// stores it, then its content type's file (KEY.attrs: fileblob reads no
// object whose attributes file is empty, as an unsynced new file can be
// after a crash), then its directory (the rename), and, once, each directory
// up to the bucket's own, whose entries a key's new prefix created. The power
// cut itself cannot be staged here: the test records what is synced, and in
// which order, through the output's sync.
func TestOutputDirectorySyncsBeforeTheAck(t *testing.T) {
	root := t.TempDir()
	o := directoryOutput(t, root, "")
	var synced []string
	tmp := regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)
	o.durable.sync = func(f *os.File) error {
		name, err := filepath.Rel(root, f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if object, ok := strings.CutSuffix(tmp.ReplaceAllString(name, ".tmp"), ".tmp"); ok {
			if _, err := os.Stat(filepath.Join(root, object)); err == nil {
				t.Errorf("%s was stored before its data was synced", object)
			}
			name = object + " (data)"
		}
		synced = append(synced, name)
		return f.Sync()
	}
	for _, c := range []struct {
		key  string
		want []string
	}{
		{"a/b/one.jsonl", []string{"a/b/one.jsonl (data)", "a/b/one.jsonl.attrs", "a/b", "a", ".", ".."}},
		{"a/b/two.jsonl", []string{"a/b/two.jsonl (data)", "a/b/two.jsonl.attrs", "a/b"}},
		{"a/c/three.jsonl", []string{"a/c/three.jsonl (data)", "a/c/three.jsonl.attrs", "a/c", "a"}},
	} {
		synced = nil
		if err := o.WriteBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte(c.key))}); err != nil {
			t.Fatalf("writing %s: %v", c.key, err)
		}
		if !slices.Equal(synced, c.want) {
			t.Errorf("writing %s synced %q, want %q", c.key, synced, c.want)
		}
		if got, err := os.ReadFile(filepath.Join(root, c.key)); err != nil || string(got) != c.key+"\n" {
			t.Errorf("%s holds %q (%v)", c.key, got, err)
		}
	}
}

// A directory whose URL asks fileblob for no attributes files
// (metadata=skip) has none to sync: the object is written and synced.
func TestOutputDirectoryWithoutAttributes(t *testing.T) {
	root := t.TempDir()
	o := directoryOutput(t, root, "?metadata=skip")
	if err := o.WriteBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte("a/one.jsonl"))}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "a", "*")); len(left) != 1 || filepath.Base(left[0]) != "one.jsonl" {
		t.Fatalf("the directory holds %q, want one.jsonl alone", left)
	}
}

// A sync that fails fails the batch, which Connect retries, and stores
// nothing: no object, no temporary file.
func TestOutputFailedSyncFailsTheBatch(t *testing.T) {
	root := t.TempDir()
	o := directoryOutput(t, root, "")
	o.durable.sync = func(*os.File) error { return errors.New("input/output error") }
	err := o.WriteBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte("x/one.jsonl"))})
	if err == nil || !strings.Contains(err.Error(), "syncing to disk: input/output error") || !strings.Contains(err.Error(), `"x/one.jsonl"`) {
		t.Fatalf("a failed sync gave %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(root, "x", "*"))
	if len(left) > 0 {
		t.Fatalf("a failed write left %q", left)
	}
}

// directoryOutput is a connected bucket output into root, its URL ending
// in query, keyed by the content of a batch's first message.
func directoryOutput(t *testing.T, root, query string) *bucketOutput {
	t.Helper()
	conf, err := outputSpec().ParseYAML(fmt.Sprintf("url: file://%s%s\npath: ${! content() }", root, query), nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := outputFromParsed(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(t.Context()) })
	return o
}

// A batch is written as it is held, message by message, not copied into one
// body first: that copy, grown by doubling, held two to three times the batch
// for the whole write (and max_in_flight of them at once). Writing 64 MiB
// into a directory allocates no more than a few of its buffers.
func TestOutputWritesTheBatchWithoutCopyingIt(t *testing.T) {
	root := t.TempDir()
	o := directoryOutput(t, root, "")
	var batch service.MessageBatch
	batch = append(batch, service.NewMessage([]byte("big.jsonl")))
	line := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 {
		batch = append(batch, service.NewMessage(line))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := o.WriteBatch(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	if allocated > 8<<20 {
		t.Errorf("writing a batch of 64 MiB allocated %d MiB", allocated>>20)
	}
	t.Logf("writing a batch of 64 MiB allocated %d KiB", allocated>>10)
	info, err := os.Stat(filepath.Join(root, "big.jsonl"))
	if want := int64(len("big.jsonl\n") + 64*(1<<20+1)); err != nil || info.Size() != want {
		t.Fatalf("big.jsonl: %v, %v bytes, want %d", err, info, want)
	}
}
