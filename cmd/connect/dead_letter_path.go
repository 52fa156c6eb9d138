package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/currents-connect/currents-connect/plugin/deadletter"
)

// deadLetterPathEnv is the variable the shipped configs write dead letters to.
const deadLetterPathEnv = "DEAD_LETTER_PATH"

// deadLetterPathWarning is a warning when DEAD_LETTER_PATH, if set, cannot
// be written, else "": its directory is a file, or it (or the nearest
// directory above it that exists, which the output would create it in)
// is not writable. The output learns it only at the first dead letter,
// maybe days later, and then retries that event for ever, holding its object
// (the checkpoint lags) with /ready at 200. A warning, not a refusal: the
// volume may be fixed before a dead letter comes.
func deadLetterPathWarning(getenv func(string) string) string {
	path := getenv(deadLetterPathEnv)
	if path == "" {
		return ""
	}
	if err := writableFile(path); err != nil {
		return fmt.Sprintf("%s=%q cannot be written (%v): each dead letter would be retried until it can, holding the object it came from",
			deadLetterPathEnv, path, err)
	}
	return ""
}

// endCutLine ends DEAD_LETTER_PATH's last line with a newline when it has
// none, and returns a warning saying so, else "". A run killed during a
// line's write (dead_letter_file writes a line with its newline at once; a
// long one may be cut), or by an older binary whose file output wrote the
// newline apart, leaves a last line without one, and this run's first dead
// letter would be glued to it, a line that is no JSON: the replay would send
// neither. Ended, only a line cut short fails, and its event was not
// acknowledged, so the killed run's successor handled it again. (A process
// still writing the file may get an empty line from this; the replay skips
// empty lines.)
func endCutLine(getenv func(string) string) string {
	path := getenv(deadLetterPathEnv)
	if path == "" {
		return ""
	}
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
		return "" // absent, or a FIFO or a device, which has no last line (see writableFile)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return "" // deadLetterPathWarning says why not writable
	}
	defer f.Close()
	if !deadletter.EndsInCutLine(f) {
		return ""
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Sprintf("%s=%q ends in a line with no newline (a run killed while writing it) and it could not be ended (%v): this run's first dead letter will be glued to it, and the replay will send neither",
			deadLetterPathEnv, path, err)
	}
	return fmt.Sprintf("%s=%q ended in a line with no newline (a run killed while writing it): a newline was added so that this run's dead letters start lines of their own; if that line is cut short, the replay reports it as not JSON, and its event was handled again after the kill",
		deadLetterPathEnv, path)
}

// writableFile says why path could not be appended to, or nil.
func writableFile(path string) error {
	if info, err := os.Stat(path); err == nil {
		if info.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		// A FIFO (a log shipper's) or a device is not opened: a FIFO's
		// open for writing waits for a reader, and its close would end
		// the stream of a reader waiting.
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		info, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && dir != filepath.Dir(dir):
			continue
		case err != nil:
			return err
		case !info.IsDir():
			return fmt.Errorf("%s is not a directory", dir)
		}
		// A file made and removed at once: the one test that holds on
		// every system, read-only mounts and ACLs included.
		f, err := os.CreateTemp(dir, ".currents-connect-write-check-*")
		if err != nil {
			return err
		}
		_ = f.Close()
		return os.Remove(f.Name())
	}
}

// deadLettersEnv names the dead letter files config/dead_letters_to_segment.yaml
// reads, and replayDeadLetterPath is that config's default DEAD_LETTER_PATH.
const (
	deadLettersEnv       = "DEAD_LETTERS"
	replayDeadLetterPath = "./dead-letter.replayed.jsonl"
)

// replayPathWarning is a warning when the file the replay config writes its
// dead letters to is one DEAD_LETTERS names (a second pass over the replay's
// own file, or the production DEAD_LETTER_PATH in the environment), else "":
// a line that fails again would be appended to the file being read, and may
// be read again and again; or when DEAD_LETTERS names no file. The input
// lists its files at start, so only one that exists now counts. Matched as
// Go's filepath.Glob does (a pattern with **, which the input takes and Go's
// Glob does not, is never said to name nothing).
func replayPathWarning(getenv func(string) string) string {
	pattern := getenv(deadLettersEnv)
	if pattern == "" {
		return ""
	}
	matches, _ := filepath.Glob(pattern)
	if len(matches) == 0 && !strings.Contains(pattern, "**") {
		// The file input ends at once, silent, on a glob that matches
		// nothing; a missing path stops the run (refuseMissingInputFile).
		return fmt.Sprintf("%s=%q names no file: there is nothing to replay", deadLettersEnv, pattern)
	}
	out := getenv(deadLetterPathEnv)
	if out == "" {
		out = replayDeadLetterPath
	}
	outInfo, err := os.Stat(out)
	if err != nil {
		return ""
	}
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil && os.SameFile(info, outInfo) {
			return fmt.Sprintf("%s=%q is a file %s=%q names: config/dead_letters_to_segment.yaml would append the lines that fail again to the file it reads; set %s to another file",
				deadLetterPathEnv, out, deadLettersEnv, pattern, deadLetterPathEnv)
		}
	}
	return ""
}
