package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
