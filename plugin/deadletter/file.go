// Package deadletter holds the dead_letter_file output: dead letters
// appended to a file, one line each, that a full disk cannot leave half
// written.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	fileFieldPath = "path"
	fileFieldSync = "sync"
)

func fileSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Local").
		Summary("Appends each message to a file as one line: a dead letter file that a full disk cannot leave with half a line.").
		Description(`
Each message is written with its newline in a single write, to a file opened for appending (created, with
its directories, if missing). A message holding newlines spans several lines.

A write cut short (a full disk, a file size limit) fails the message, and what it wrote is taken back
before the error is returned, so that the retry writes the whole line where it would have gone. Benthos'
`+"`file`"+` output, with `+"`codec: lines`"+`, leaves the cut line in the file and appends the retry
to it: one line holding a fragment and a whole dead letter, which is no JSON and which a replay cannot
send. When the cut cannot be taken back (another process appended to the file meanwhile), the next line
starts with a newline instead, ending the fragment's line.

A file found ending in a line with no newline (a run killed while writing it) gets its next line on a
line of its own, with a warning.

Before each batch it checks that the file open is still the one at `+"`path`"+`: one deleted or moved away
(to replay it while the pipeline runs) is left, and the line goes to a new file at `+"`path`"+`, where the
`+"`file`"+` output would go on writing into the file moved, or into a deleted one no path names.

A batch is acknowledged only once its lines are on disk: after its writes the file is synced (fsync), and
when the file was created, its directory and the parent of each directory made for it. The `+"`file`"+`
output does not sync, so a crash of the machine (not of the process) can lose the dead letters it
acknowledged: their events are then nowhere, the input having counted them done. A sync that fails fails
the whole batch, which is written again (a line may then be in the file twice; a replay sends both, and
Segment keeps one by `+"`messageId`"+`).

A FIFO, or `+"`/dev/stdout`"+` where it is a pipe (a container's), is written without a sync, which it cannot
take: a line is acknowledged once the pipe took it. With no process reading it, the lines fail and are
retried until one does. `+"`/dev/stdout`"+` redirected to a file is appended to at the file's end, where the
process's own writes to stdout (its logs) may overwrite the lines: give the dead letters a file of their own.`).
		Fields(
			service.NewStringField(fileFieldPath).
				Description("The file to append to.").
				Examples("./dead-letter.jsonl", "/var/lib/currents-connect/dead-letter.jsonl"),
			service.NewBoolField(fileFieldSync).
				Description("Sync the file to disk before acknowledging a batch. Off, a crash of the machine can lose the last dead letters acknowledged; on, each batch costs one fsync (see docs/benchmarks.md).").
				Default(true).
				Advanced(),
		)
}

func init() {
	service.MustRegisterBatchOutput("dead_letter_file", fileSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			o, err := fileOutputFromParsed(conf, mgr.Logger())
			return o, service.BatchPolicy{}, 1, err
		})
}

func fileOutputFromParsed(conf *service.ParsedConfig, log *service.Logger) (*fileOutput, error) {
	path, err := conf.FieldString(fileFieldPath)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%s is empty", fileFieldPath)
	}
	syncs, err := conf.FieldBool(fileFieldSync)
	if err != nil {
		return nil, err
	}
	o := &fileOutput{path: filepath.Clean(path), log: log}
	if syncs {
		o.sync = (*os.File).Sync
	}
	return o, nil
}

// fileOutput appends lines to path. Writes are serialised (max_in_flight
// 1): a line's size before it is written is where a cut one is taken back
// to.
type fileOutput struct {
	path string
	log  *service.Logger
	sync func(*os.File) error // nil: not synced

	mu       sync.Mutex
	file     *os.File
	cut      bool     // the file may end in a fragment that could not be taken back
	unsynced []string // directories holding an entry made here, not synced yet
	special  bool     // not a regular file (a FIFO, a pipe): nothing to sync
}

// Connect opens nothing: the file is opened at the first write, so that a
// path that cannot be opened fails writes, counted in output_error and
// retried by the input, rather than the connection, which would hold the
// messages uncounted and mark the pipeline not ready.
func (o *fileOutput) Connect(context.Context) error {
	return nil
}

// open opens the file for appending unless the one open is still at path.
// One deleted or moved away (after a replay of it) would otherwise take
// every later line out of reach: into a file no path names, lost at the
// process's end, or into the one moved, after its replay.
func (o *fileOutput) open() error {
	// What is at path, looked at once: the file held, nothing (an entry to
	// make and sync), or another file (a FIFO, a pipe).
	at, atErr := os.Stat(o.path)
	if o.file != nil {
		held, err := o.file.Stat()
		if err != nil {
			return err
		}
		if atErr == nil && os.SameFile(held, at) {
			return nil
		}
		_ = o.file.Close()
		o.file, o.cut = nil, false
	}
	// Each directory made is a new entry of its parent, to sync as the
	// file's own entry is.
	var made []string
	for dir := filepath.Dir(o.path); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append(made, filepath.Dir(dir))
	}
	if err := os.MkdirAll(filepath.Dir(o.path), 0o777); err != nil {
		return err
	}
	o.unsynced = append(o.unsynced, made...)
	if errors.Is(atErr, fs.ErrNotExist) {
		o.unsynced = append(o.unsynced, filepath.Dir(o.path))
	}
	// Read too, for its last byte; a file this user may only write is
	// written without that check.
	flags := os.O_CREATE | os.O_RDWR | os.O_APPEND
	if atErr == nil && !at.Mode().IsRegular() {
		// A FIFO or a pipe (/dev/stdout) write-only: one with no reader
		// then fails the open (ENXIO, not waiting: non-blocking) or the
		// write (EPIPE), rather than filling a pipe this process reads
		// too, its lines acknowledged and lost.
		flags = os.O_WRONLY | os.O_APPEND | syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(o.path, flags, 0o666)
	if errors.Is(err, fs.ErrPermission) {
		f, err = os.OpenFile(o.path, flags&^os.O_RDWR|os.O_WRONLY, 0o666)
	}
	if errors.Is(err, syscall.ENXIO) {
		return fmt.Errorf("no process reads the FIFO %s (yet): %w", o.path, err)
	}
	if err != nil {
		return err
	}
	// The file opened decides, should another have taken path meanwhile.
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	o.file, o.special = f, !info.Mode().IsRegular()
	if EndsInCutLine(f) {
		o.cut = true
		o.log.Warnf("%s ends in a line with no newline (a run killed while writing it): the next line starts a line of its own; if that line is cut short, a replay reports it as not JSON", o.path)
	}
	return nil
}

// EndsInCutLine says whether f is a regular file ending in a line without its
// newline: a run killed while writing it left it so. The binary's start
// checks DEAD_LETTER_PATH with it too, for a config whose dead letters go
// through another output.
func EndsInCutLine(f *os.File) bool {
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() == 0 {
		return false
	}
	last := make([]byte, 1)
	_, err = f.ReadAt(last, info.Size()-1)
	return err == nil && last[0] != '\n'
}

// WriteBatch appends the batch's lines, then syncs them. When a line cannot
// be written, those before it are synced and acknowledged, and it and those
// after it fail.
func (o *fileOutput) WriteBatch(_ context.Context, batch service.MessageBatch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.open(); err != nil {
		return err
	}
	for i, msg := range batch {
		err := o.write(msg)
		if err == nil {
			continue
		}
		if i == 0 {
			return err
		}
		if err := o.flush(); err != nil {
			return err
		}
		failed := service.NewBatchError(batch, err).Failed(i, err)
		for j := i + 1; j < len(batch); j++ {
			failed.Failed(j, fmt.Errorf("not written: an earlier line of its batch failed: %w", err))
		}
		return failed
	}
	return o.flush()
}

func (o *fileOutput) write(msg *service.Message) error {
	body, err := msg.AsBytes()
	if err != nil {
		return err
	}
	line := make([]byte, 0, len(body)+2)
	if o.cut {
		line = append(line, '\n')
	}
	line = append(append(line, body...), '\n')
	info, err := o.file.Stat()
	if err != nil {
		return err
	}
	before := info.Size()
	n, err := o.file.Write(line)
	if err == nil {
		o.cut = false
		return nil
	}
	if o.special {
		// Reopened at the next batch: a FIFO's next reader is not this
		// file's.
		_ = o.file.Close()
		o.file = nil
		return err
	}
	if n > 0 {
		o.cut = o.cut || !o.takeBack(before, int64(n))
	}
	return err // "write <path>: no space left on device"
}

// flush syncs the file, and the directories of the entries open made (the
// file's, and the directories made for it), so that the lines written are
// on disk before they are acknowledged. A pipe or a
// device is not synced: it refuses (EINVAL), and what it was written is
// its reader's already.
func (o *fileOutput) flush() error {
	if o.sync == nil || o.special {
		return nil
	}
	// Sync's error names the file: "sync <path>: <reason>".
	if err := o.sync(o.file); err != nil {
		return err
	}
	for len(o.unsynced) > 0 {
		if err := o.syncDir(o.unsynced[0]); err != nil {
			return err
		}
		o.unsynced = o.unsynced[1:]
	}
	return nil
}

func (o *fileOutput) syncDir(path string) error {
	dir, err := os.Open(path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return o.sync(dir)
}

// takeBack truncates the file to before when it ends with the n bytes of
// a cut write, and says whether the file now ends where it did before.
// When another process appended meanwhile, truncating would cut its lines
// too: the fragment is left, and the next line ends it.
func (o *fileOutput) takeBack(before, n int64) bool {
	info, err := o.file.Stat()
	if err != nil || info.Size() != before+n {
		return false
	}
	return o.file.Truncate(before) == nil
}

func (o *fileOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file == nil {
		return nil
	}
	err := o.file.Close()
	o.file = nil
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
