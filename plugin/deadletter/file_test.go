package deadletter

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// TestFileOutputEndsAFragmentItCannotTakeBack: a cut write is taken back
// only while the file ends with it; when another process appended after it,
// truncating would cut that process's lines, so the fragment stays and the
// next line starts with a newline, ending the fragment's line. (The cut
// write itself, on a real file size limit, is TestDeadLetterFileFullThenFreed
// in e2e.)
func TestFileOutputEndsAFragmentItCannotTakeBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dead-letter.jsonl")
	o := &fileOutput{path: path}
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer o.Close(ctx)
	if err := writeLine(ctx, o, `{"a":1}`); err != nil {
		t.Fatal(err)
	}
	// As a cut write of 4 bytes at offset 8 leaves it, then another process's line.
	if _, err := o.file.Write([]byte(`{"b"` + `{"other":1}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if o.takeBack(8, 4) {
		t.Fatal("a cut write with another process's line after it was taken back")
	}
	o.cut = true
	if err := writeLine(ctx, o, `{"b":2}`); err != nil {
		t.Fatal(err)
	}
	if err := writeLine(ctx, o, `{"c":3}`); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":1}` + "\n" + `{"b"{"other":1}` + "\n\n" + `{"b":2}` + "\n" + `{"c":3}` + "\n"
	if string(data) != want {
		t.Fatalf("the file holds %q, want %q", data, want)
	}
	// Where the file still ends with the cut write, it is taken back.
	if _, err := o.file.Write([]byte(`{"d`)); err != nil {
		t.Fatal(err)
	}
	if !o.takeBack(int64(len(want)), 3) {
		t.Fatal("a cut write at the end of the file was not taken back")
	}
	if data, _ := os.ReadFile(path); string(data) != want {
		t.Fatalf("after taking back, the file holds %q, want %q", data, want)
	}
}

// TestFileOutputFollowsThePath: the file deleted, or moved away, while the
// output runs (an operator replaying it, then deleting it), the next line
// goes to a new file at the path, not into the file moved or deleted.
func TestFileOutputFollowsThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dead-letter.jsonl")
	o := &fileOutput{path: path}
	ctx := context.Background()
	defer o.Close(ctx)
	write := func(line string) {
		t.Helper()
		if err := writeLine(ctx, o, line); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	moved := filepath.Join(dir, "dead-letter.1.jsonl")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	write("2")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	write("3")
	for file, want := range map[string]string{moved: "1\n", path: "3\n"} {
		if data, err := os.ReadFile(file); err != nil || string(data) != want {
			t.Errorf("%s holds %q (%v), want %q", filepath.Base(file), data, err, want)
		}
	}
}

// TestFileOutputEndsACutLastLine: a file whose last line has no newline (a
// run killed while writing it, into a path DEAD_LETTER_PATH does not name,
// so the binary's check at start did not end it: a config's default) gets
// the next line on a line of its own, not glued to the cut one.
func TestFileOutputEndsACutLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letter.jsonl")
	if err := os.WriteFile(path, []byte(`{"a":1}`+"\n"+`{"b":`), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &fileOutput{path: path}
	ctx := context.Background()
	defer o.Close(ctx)
	if err := writeLine(ctx, o, `{"c":3}`); err != nil {
		t.Fatal(err)
	}
	want := `{"a":1}` + "\n" + `{"b":` + "\n" + `{"c":3}` + "\n"
	if data, err := os.ReadFile(path); err != nil || string(data) != want {
		t.Fatalf("the file holds %q (%v), want %q", data, err, want)
	}
}

// TestFileOutputFailsWritesNotConnect: a path that cannot be opened (under a
// regular file, on a read-only volume) fails each write, not the connection,
// as the file output does: a write error is counted in output_error, which
// the CurrentsConnectDeadLetterFileUnwritable alert watches, and the messages
// are retried by their input; an output that cannot connect would instead
// hold them, uncounted, and mark the pipeline not ready.
func TestFileOutputFailsWritesNotConnect(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "volume")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o := &fileOutput{path: filepath.Join(notADir, "dead-letter.jsonl")}
	ctx := context.Background()
	if err := o.Connect(ctx); err != nil {
		t.Fatalf("Connect failed: %v", err)
	}
	if err := writeLine(ctx, o, `{"a":1}`); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Write returned %v, want the reason the file cannot be opened", err)
	}
}

func writeLine(ctx context.Context, o *fileOutput, line string) error {
	return o.WriteBatch(ctx, service.MessageBatch{service.NewMessage([]byte(line))})
}

// parsedOutput builds the output from YAML as the binary does.
func parsedOutput(t *testing.T, yaml string) *fileOutput {
	t.Helper()
	conf, err := fileSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := fileOutputFromParsed(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestFileOutputSyncsBeforeAcknowledging: by default a batch is acknowledged
// only after its lines are synced, with the new file's directory; a sync
// that fails fails the batch, which is then written again.
func TestFileOutputSyncsBeforeAcknowledging(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dead-letter.jsonl")
	o := parsedOutput(t, "path: "+path)
	if o.sync == nil {
		t.Fatal("sync is off by default")
	}
	ctx := context.Background()
	defer o.Close(ctx)
	var synced []string // each sync: the file's content, or the directory
	var fail error
	o.sync = func(f *os.File) error {
		if f.Name() == dir {
			synced = append(synced, "dir")
		} else {
			data, _ := os.ReadFile(f.Name())
			synced = append(synced, string(data))
		}
		if fail != nil {
			return &fs.PathError{Op: "sync", Path: f.Name(), Err: fail} // as (*os.File).Sync fails
		}
		return f.Sync()
	}
	batch := func(lines ...string) service.MessageBatch {
		var b service.MessageBatch
		for _, l := range lines {
			b = append(b, service.NewMessage([]byte(l)))
		}
		return b
	}
	if err := o.WriteBatch(ctx, batch("1", "2", "3")); err != nil {
		t.Fatal(err)
	}
	fail = errors.New("input/output error")
	err := o.WriteBatch(ctx, batch("4"))
	var be *service.BatchError
	if err == nil || errors.As(err, &be) || err.Error() != "sync "+path+": input/output error" {
		t.Fatalf("a failed sync returned %v, want the whole batch failed with the path and the reason", err)
	}
	fail = nil
	if err := o.WriteBatch(ctx, batch("4")); err != nil {
		t.Fatal(err)
	}
	want := []string{"1\n2\n3\n", "dir", "1\n2\n3\n4\n", "1\n2\n3\n4\n4\n"}
	if !slices.Equal(synced, want) {
		t.Fatalf("synced %q, want %q (the file after each batch, the new file's directory once)", synced, want)
	}
	if o := parsedOutput(t, "path: "+path+"\nsync: false"); o.sync != nil {
		t.Fatal("sync: false syncs")
	}
}

// sizeLimitChild is set in the environment of this test binary run again
// for TestFileOutputFailsOnlyTheLinesNotWritten alone.
const sizeLimitChild = "CURRENTS_CONNECT_DEADLETTER_SIZE_LIMIT_CHILD"

// TestFileOutputFailsOnlyTheLinesNotWritten: a line that cannot be written
// (past a file size limit, as on a full disk) fails with those after it;
// those before it are synced and acknowledged, not written twice by the
// retry. The limit is a process's (Go ignores the SIGXFSZ it raises: the
// write fails with EFBIG), so the test runs in a child of its own: in this
// process it also failed the test framework's own log (testlog.txt) when
// that was written meanwhile, failing the package.
func TestFileOutputFailsOnlyTheLinesNotWritten(t *testing.T) {
	if os.Getenv(sizeLimitChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileOutputFailsOnlyTheLinesNotWritten$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), sizeLimitChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFileOutputFailsOnlyTheLinesNotWritten")) {
			t.Fatalf("the test in a child process: %v\n%s", err, out)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "dead-letter.jsonl")
	o := parsedOutput(t, "path: "+path)
	ctx := context.Background()
	defer o.Close(ctx)
	b := service.MessageBatch{
		service.NewMessage([]byte("1")),
		service.NewMessage([]byte(`{"a long line":"past the limit"}`)),
		service.NewMessage([]byte("3")),
	}
	index := b.Index()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 16, Max: was.Max}); err != nil {
		t.Fatal(err)
	}
	err := o.WriteBatch(ctx, b)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	var be *service.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteBatch returned %v, want a batch error", err)
	}
	var failed []int
	be.WalkMessagesIndexedBy(index, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			failed = append(failed, i)
		}
		return true
	})
	if !slices.Equal(failed, []int{1, 2}) {
		t.Fatalf("failed lines %v, want [1 2] (%v)", failed, err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "1\n" {
		t.Fatalf("the file holds %q (%v), want the line before the failed one, the cut one taken back", data, err)
	}
}

// TestFileOutputWritesToAPipe: a path that is no regular file (a FIFO, or
// /dev/stdout under a container's log collector) takes the lines without a
// sync, which such files refuse (EINVAL): the sync failed every batch, each
// retry writing its lines into the pipe again, for ever.
func TestFileOutputWritesToAPipe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened read-write, the reader's end never blocks the writer's open.
	reader, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	o := parsedOutput(t, "path: "+path)
	ctx := context.Background()
	defer o.Close(ctx)
	if err := writeLine(ctx, o, `{"a":1}`); err != nil {
		t.Fatalf("a line to a FIFO failed: %v", err)
	}
	got := make([]byte, 64)
	n, err := reader.Read(got)
	if err != nil || string(got[:n]) != `{"a":1}`+"\n" {
		t.Fatalf("the FIFO holds %q (%v), want the line once", got[:n], err)
	}
}

// TestFileOutputSyncsTheDirectoriesItMakes: a file created with its
// directories is acknowledged only once each new entry is on disk: the
// file's in its directory, and each directory made in its parent. Only the
// file's directory was synced, so a crash of the machine could lose a new
// directory, and the acknowledged lines in it.
func TestFileOutputSyncsTheDirectoriesItMakes(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "dead-letter.jsonl")
	o := parsedOutput(t, "path: "+path)
	ctx := context.Background()
	defer o.Close(ctx)
	var synced []string
	o.sync = func(f *os.File) error {
		synced = append(synced, f.Name())
		return f.Sync()
	}
	for range 2 {
		if err := writeLine(ctx, o, "1"); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(synced)
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b"), path, path}
	if !slices.Equal(synced, want) {
		t.Fatalf("synced %q, want %q (each new entry's directory once, the file at each batch)", synced, want)
	}
}

// TestFileOutputFailsAFIFOWithNoReader: lines to a FIFO no one reads (its
// reader not started yet, or gone) fail, to be retried, and reach a reader
// that comes later. The output opened the FIFO read-write, a reader of it
// itself: its writes went into the pipe's buffer and were acknowledged, then
// lost with the process.
func TestFileOutputFailsAFIFOWithNoReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	o := parsedOutput(t, "path: "+path)
	ctx := context.Background()
	defer o.Close(ctx)
	if err := writeLine(ctx, o, "1"); !errors.Is(err, syscall.ENXIO) || !strings.Contains(err.Error(), "no process reads the FIFO "+path) {
		t.Fatalf("a line to a FIFO with no reader returned %v, want ENXIO saying no process reads it", err)
	}
	read := func(want string) {
		t.Helper()
		reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer reader.Close()
		if err := writeLine(ctx, o, want); err != nil {
			t.Fatalf("a line to a FIFO read failed: %v", err)
		}
		got := make([]byte, 64)
		if n, err := reader.Read(got); err != nil || string(got[:n]) != want+"\n" {
			t.Fatalf("the reader got %q (%v), want %q", got[:n], err, want+"\n")
		}
	}
	read("2")
	if err := writeLine(ctx, o, "3"); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("a line to a FIFO whose reader left returned %v, want EPIPE", err)
	}
	read("4")
}
