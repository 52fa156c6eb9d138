package bucket

import (
	"bufio"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gocloud.dev/blob"
)

// durable writes objects so that, in a directory, an acknowledged batch
// survives a crash of the machine, not only of the process: fileblob
// neither syncs a file nor the rename that stores it, so the page cache
// could lose an object after its batch was acked. Cloud stores have stored
// an object once its write returns.
type durable struct {
	root string // the bucket's directory; "" for a cloud bucket
	sync func(*os.File) error

	mu     sync.Mutex
	synced map[string]bool // directories whose entry in their parent is on disk
}

// writeBufferSize is how much of an object is gathered before a write to
// the store.
const writeBufferSize = 64 << 10

var newline = []byte{'\n'}

// attrsSuffix ends the name of the file where fileblob keeps an object's
// attributes, beside it.
const attrsSuffix = ".attrs"

func newDurable(root string) *durable {
	return &durable{root: root, sync: (*os.File).Sync, synced: map[string]bool{}}
}

// write stores lines under key, each followed by a newline: for a
// directory, the data is synced before the temporary file is renamed into
// place, and the rename after.
func (d *durable) write(ctx context.Context, bucket *blob.Bucket, key string, lines [][]byte, contentType string) error {
	var file *os.File
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := &blob.WriterOptions{ContentType: contentType}
	if d.root == "" {
		// The object's MD5, taken first, lets a cloud store refuse what
		// did not arrive as sent, as WriteAll would.
		sum := md5.New()
		for _, line := range lines {
			sum.Write(line)
			sum.Write(newline)
		}
		opts.ContentMD5 = sum.Sum(nil)
	} else {
		// Detection would open the file only at Close, after the rename.
		opts.DisableContentTypeDetection = true
		opts.BeforeWrite = func(as func(any) bool) error { as(&file); return nil }
	}
	w, err := bucket.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	// A cancelled writer stores nothing: a directory's removes its
	// temporary file, a cloud store's never completes the object.
	abort := func(err error) error {
		cancel()
		_ = w.Close()
		return err
	}
	// Lines are often small: gathered, they make fewer writes to the file
	// or to the upload.
	buf := bufio.NewWriterSize(w, writeBufferSize)
	for _, line := range lines {
		buf.Write(line)
		buf.Write(newline)
	}
	if err := buf.Flush(); err != nil {
		return abort(err)
	}
	if d.root == "" {
		return w.Close()
	}
	if file == nil {
		return abort(fmt.Errorf("the directory's writer gave no file to sync"))
	}
	if err := d.sync(file); err != nil {
		return abort(fmt.Errorf("syncing to disk: %w", err))
	}
	if err := w.Close(); err != nil {
		return err
	}
	// fileblob wrote the object's content type in KEY.attrs just before the
	// rename, unsynced: a crash could leave it empty, and fileblob reads no
	// object whose attributes it cannot decode. The URL's metadata=skip
	// writes none. The temporary file's name is KEY.<hex>.tmp.
	object := strings.TrimSuffix(file.Name(), filepath.Ext(strings.TrimSuffix(file.Name(), ".tmp"))+".tmp")
	if err := d.syncFile(object + attrsSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("syncing %s to disk: %w", object+attrsSuffix, err)
	}
	// The temporary file was beside the object, so its directory is the
	// object's (bucketurl.Open asks fileblob for that).
	return d.syncDirs(filepath.Dir(file.Name()))
}

// syncDirs syncs dir, which holds the rename, and, once a process, the
// entry of each directory from dir up to the bucket's own, which fileblob
// may have created (create_dir=true, a key's new prefix).
func (d *durable) syncDirs(dir string) error {
	if err := d.syncDir(dir); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for !d.synced[dir] {
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		if err := d.syncDir(parent); err != nil {
			return err
		}
		d.synced[dir] = true
		if dir == d.root {
			break
		}
		dir = parent
	}
	return nil
}

func (d *durable) syncDir(dir string) error {
	if err := d.syncFile(dir); err != nil {
		return fmt.Errorf("syncing directory %s to disk: %w", dir, err)
	}
	return nil
}

func (d *durable) syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return d.sync(f)
}
