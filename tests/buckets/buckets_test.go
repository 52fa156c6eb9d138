package buckets

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

func TestS3(t *testing.T)      { exercise(t, StartS3(t)) }
func TestAzurite(t *testing.T) { exercise(t, StartAzurite(t)) }
func TestFile(t *testing.T)    { exercise(t, FileBucket(t)) }
func TestGCS(t *testing.T)     { exercise(t, StartGCS(t)) }

// openURL opens b the way the connector will: by URL, with b.Env applied.
func openURL(t *testing.T, b *Bucket) *blob.Bucket {
	t.Helper()
	for k, v := range b.Env {
		t.Setenv(k, v)
	}
	bkt, err := blob.OpenBucket(t.Context(), b.URL)
	if err != nil {
		t.Fatalf("open %s: %v", b.URL, err)
	}
	t.Cleanup(func() { bkt.Close() })
	return bkt
}

func exercise(t *testing.T, b *Bucket) {
	ctx := t.Context()
	bkt := openURL(t, b)

	src := t.TempDir()
	files := map[string]string{
		"top.txt":            "top",
		"logs/readme.txt":    "readme",
		"logs/2024/01.jsonl": `{"n":1}`,
		"logs/2024/02.jsonl": `{"n":2}`,
		"logs/2025/01.jsonl": `{"n":3}`,
	}
	for name, data := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
	keys := UploadDir(t, b, src)
	want := []string{"logs/2024/01.jsonl", "logs/2024/02.jsonl", "logs/2025/01.jsonl", "logs/readme.txt", "top.txt"}
	if !slices.Equal(keys, want) {
		t.Fatalf("UploadDir keys = %q, want %q", keys, want)
	}
	Upload(t, b, "logs/2024/03.jsonl", []byte(`{"n":4}`))

	// A delimiter folds deeper keys into "directories".
	got := list(t, bkt, &blob.ListOptions{Prefix: "logs/", Delimiter: "/"})
	if want := []string{"logs/2024/ dir", "logs/2025/ dir", "logs/readme.txt"}; !slices.Equal(got, want) {
		t.Errorf("list logs/ with delimiter = %q, want %q", got, want)
	}
	got = list(t, bkt, &blob.ListOptions{Prefix: "logs/2024/"})
	if want := []string{"logs/2024/01.jsonl", "logs/2024/02.jsonl", "logs/2024/03.jsonl"}; !slices.Equal(got, want) {
		t.Errorf("list logs/2024/ = %q, want %q", got, want)
	}

	for key, data := range map[string]string{"logs/2024/02.jsonl": `{"n":2}`, "logs/2024/03.jsonl": `{"n":4}`} {
		if got, err := bkt.ReadAll(ctx, key); err != nil || string(got) != data {
			t.Errorf("read %s = %q, %v; want %q", key, got, err, data)
		}
	}

	must(t, bkt.Delete(ctx, "logs/2024/01.jsonl"))
	if _, err := bkt.ReadAll(ctx, "logs/2024/01.jsonl"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("read after delete: err = %v, want NotFound", err)
	}
	if got := list(t, bkt, &blob.ListOptions{Prefix: "logs/2024/"}); len(got) != 2 {
		t.Errorf("list after delete = %q, want 2 keys", got)
	}

	// A 5 MB object, streamed through a Writer rather than WriteAll.
	big := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	w, err := bkt.NewWriter(ctx, "big/object.bin", nil)
	must(t, err)
	_, err = io.Copy(w, bytes.NewReader(big)) // streamed, not one buffer
	must(t, err)
	must(t, w.Close())
	r, err := bkt.NewReader(ctx, "big/object.bin", nil)
	must(t, err)
	defer r.Close()
	if r.Size() != int64(len(big)) {
		t.Errorf("big object size = %d, want %d", r.Size(), len(big))
	}
	back, err := io.ReadAll(r)
	must(t, err)
	if !bytes.Equal(back, big) {
		t.Errorf("big object read back %d bytes, differs from the %d written", len(back), len(big))
	}
}

// TestS3ProcessServesAnObjectWhileTheStoreGrows: a GET streams an object
// while writes grow the bolt store past its memory map, which bbolt then
// maps anew. s3bolt hands out contents that alias the old map: the server
// died of a segmentation fault mid-stream (seen in e2e runs) until it
// served copies.
func TestS3ProcessServesAnObjectWhileTheStoreGrows(t *testing.T) {
	b, _, _ := StartS3Process(t, "", t.TempDir())
	big := make([]byte, 8<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(big)
	Upload(t, b, "streamed.bin", big)
	bkt := openURL(t, b)
	r, err := bkt.NewReader(t.Context(), "streamed.bin", nil)
	must(t, err)
	defer r.Close()
	head := make([]byte, 64<<10)
	_, err = io.ReadFull(r, head) // the rest waits in the server's response
	must(t, err)
	for i := range 12 { // 96 MB: the store's map grows several times
		Upload(t, b, fmt.Sprintf("grow-%d.bin", i), big)
	}
	rest, err := io.ReadAll(r)
	must(t, err)
	if got := append(head, rest...); !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(big))
	}
}

func TestS3ProcessKeepsDataAcrossRestart(t *testing.T) {
	b, stop, restart := StartS3Process(t, "", t.TempDir())
	Upload(t, b, "kept.txt", []byte("survives"))

	stop()
	host := b.S3Endpoint(t).Host
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after stop", host)
	}

	restart()
	bkt := openURL(t, b)
	if got, err := bkt.ReadAll(t.Context(), "kept.txt"); err != nil || string(got) != "survives" {
		t.Fatalf("after restart read = %q, %v; want %q", got, err, "survives")
	}
	// The server took the same address, so the URL is still valid.
	if b.S3Endpoint(t).Host != host {
		t.Fatalf("address changed across restart")
	}
}

// list returns the keys under opts, "dir"-suffixed for directories.
func list(t *testing.T, bkt *blob.Bucket, opts *blob.ListOptions) []string {
	t.Helper()
	var keys []string
	it := bkt.List(opts)
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			return keys
		}
		must(t, err)
		if obj.IsDir {
			keys = append(keys, obj.Key+" dir")
		} else {
			keys = append(keys, obj.Key)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
