// Package buckets runs real object-store servers on loopback for tests:
// gofakes3 (S3 API, driven by the AWS SDK v2), Azurite (Azure Blob),
// fake-gcs-server (Cloud Storage) and plain file:// buckets, all reached
// through gocloud.dev/blob URLs:
//
//	s3://connect-test?endpoint=http://127.0.0.1:PORT&region=us-east-1&use_path_style=true&disable_https=true
//	azblob://connect-test?domain=127.0.0.1:PORT&protocol=http&localemu=true
//	gs://connect-test (with STORAGE_EMULATOR_HOST=127.0.0.1:PORT)
//	file:///TMPDIR
//
// with the credentials in Bucket.Env.
package buckets

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // registers file:// for blob.OpenBucket
)

// Bucket is a bucket on a running server.
type Bucket struct {
	URL  string            // gocloud URL of the bucket, usable by blob.OpenBucket
	Env  map[string]string // environment the URL needs (credentials etc.); apply with t.Setenv or cmd.Env
	Name string
	// Stop stops the server at once, to see writes fail; nil for servers
	// that cannot be stopped alone (Azurite, file://).
	Stop func()

	// open opens the bucket with explicit credentials, so helpers work
	// without Env applied to this process (e.g. when only a subprocess has it).
	open func(ctx context.Context) (*blob.Bucket, error)
}

// Open opens b without reading the process environment; it is closed when
// the test ends.
func (b *Bucket) Open(t testing.TB) *blob.Bucket {
	t.Helper()
	open := b.open
	if open == nil {
		open = func(ctx context.Context) (*blob.Bucket, error) { return blob.OpenBucket(ctx, b.URL) }
	}
	bkt, err := open(context.Background())
	if err != nil {
		t.Fatalf("open %s: %v", b.URL, err)
	}
	t.Cleanup(func() { bkt.Close() })
	return bkt
}

// EnvList returns Env as KEY=VALUE pairs, to append to an exec.Cmd's Env.
func (b *Bucket) EnvList() []string {
	var out []string
	for k, v := range b.Env {
		out = append(out, k+"="+v)
	}
	return out
}

// FileBucket returns a file:// bucket in a fresh t.TempDir().
func FileBucket(t testing.TB) *Bucket {
	dir := t.TempDir()
	return &Bucket{URL: "file://" + filepath.ToSlash(dir), Env: map[string]string{}, Name: filepath.Base(dir)}
}

// Upload writes data under key.
func Upload(t testing.TB, b *Bucket, key string, data []byte) {
	t.Helper()
	bkt := b.Open(t)
	if err := bkt.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("upload %s to %s: %v", key, b.URL, err)
	}
}

// UploadDir uploads every regular file under dir, keyed by its slash path
// relative to dir, and returns the keys in lexical order.
func UploadDir(t testing.TB, b *Bucket, dir string) []string {
	t.Helper()
	bkt := b.Open(t)
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		keys = append(keys, key)
		return bkt.WriteAll(context.Background(), key, data, nil)
	})
	if err != nil {
		t.Fatalf("upload %s to %s: %v", dir, b.URL, err)
	}
	return keys
}
