package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A DEAD_LETTER_PATH that cannot be written is warned of; one in a
// writable directory, existing or still to be made, or unset, is not.
func TestWarnDeadLetterPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(file, "dead.jsonl"):       "is not a directory",
		dir:                                     "is a directory",
		filepath.Join(dir, "new", "dead.jsonl"): "",
		filepath.Join(dir, "dead-letter.jsonl"): "",
		file:                                    "",
		"":                                      "",
	} {
		got := deadLetterPathWarning(func(string) string { return path })
		switch {
		case want == "" && got != "":
			t.Errorf("%q: warned %q", path, got)
		case want != "" && (!strings.HasPrefix(got, "DEAD_LETTER_PATH=") || !strings.Contains(got, want)):
			t.Errorf("%q: warned %q, want a warning with %q", path, got, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the check left files behind: %v", entries)
	}
}

// The replay config's dead letter file is warned of when DEAD_LETTERS names
// it (by path, another path to it, or a glob), DEAD_LETTER_PATH unset meaning
// the config's default; a new file, or one the glob does not take, is not. A
// DEAD_LETTERS that names no file is warned of too.
func TestWarnReplayIntoTheFileRead(t *testing.T) {
	const appends = "would append the lines that fail again to the file it reads"
	dir := t.TempDir()
	t.Chdir(dir)
	for _, name := range []string{"dead-letter.jsonl", "dead-letter.replayed.jsonl"} {
		if err := os.WriteFile(name, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		deadLetters, deadLetterPath string
		warn                        string
	}{
		{"./dead-letter.jsonl", "", ""},
		{"./dead-letter.replayed.jsonl", "", appends},
		{"dead-letter*.jsonl", "", appends},
		{"./dead-letter.jsonl", filepath.Join(dir, "dead-letter.jsonl"), appends},
		{"./dead-letter.jsonl", "./new.jsonl", ""},
		{"./missing.jsonl", "", "names no file"},
		{"./*.txt", "./dead-letter.jsonl", "names no file"},
		{"./**/*.txt", "", ""},
		{"", "./dead-letter.jsonl", ""},
	} {
		env := map[string]string{"DEAD_LETTERS": c.deadLetters, "DEAD_LETTER_PATH": c.deadLetterPath}
		got := replayPathWarning(func(k string) string { return env[k] })
		if c.warn == "" && got != "" || !strings.Contains(got, c.warn) {
			t.Errorf("DEAD_LETTERS=%q DEAD_LETTER_PATH=%q: warned %q, want %q", c.deadLetters, c.deadLetterPath, got, c.warn)
		}
	}
}

// A dead letter file whose last line has no newline (a run killed while
// writing it) gets one, and a warning; a whole file, an empty one, an absent
// one (not made) and a directory are left as they are.
func TestEndCutLine(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ data, want, warn string }{
		"cut":   {`{"error":"x"}` + "\n" + `{"err`, `{"error":"x"}` + "\n" + `{"err` + "\n", "ended in a line with no newline"},
		"whole": {`{"error":"x"}` + "\n", `{"error":"x"}` + "\n", ""},
		"empty": {"", "", ""},
	} {
		path := filepath.Join(dir, name+".jsonl")
		if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		warn := endCutLine(func(string) string { return path })
		if (c.warn == "") != (warn == "") || !strings.Contains(warn, c.warn) {
			t.Errorf("%s: warned %q, want %q", name, warn, c.warn)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != c.want {
			t.Errorf("%s: the file holds %q (%v), want %q", name, got, err, c.want)
		}
	}
	absent := filepath.Join(dir, "absent.jsonl")
	for _, path := range []string{absent, dir, ""} {
		if warn := endCutLine(func(string) string { return path }); warn != "" {
			t.Errorf("%q: warned %q", path, warn)
		}
	}
	if _, err := os.Stat(absent); err == nil {
		t.Errorf("the check made %s", absent)
	}
}

// TestDeadLetterPathChecksLeaveAFIFOAlone: a DEAD_LETTER_PATH that is a
// FIFO (a log shipper's) is neither warned of nor opened at start: opened
// for writing with no reader yet, the open blocked, and the binary hung
// before its first log line; with a reader waiting, the check's open and
// close gave it an end of file.
func TestDeadLetterPathChecksLeaveAFIFOAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return path }
	done := make(chan string)
	go func() { done <- deadLetterPathWarning(getenv) + endCutLine(getenv) }()
	select {
	case warn := <-done:
		if warn != "" {
			t.Fatalf("warned %q", warn)
		}
	case <-time.After(time.Minute): // a hang, not a slow machine
		t.Fatal("the checks of a FIFO with no reader did not return")
	}
}
