package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// readmeCommands are the lines of the README's ```sh blocks.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	inSh := false
	for _, line := range strings.Split(readRepoFile(t, "README.md"), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	return cmds
}

// TestReadmeCommands runs every command of the README's shell blocks, from
// the root of a copy of the repository (readmeRepo: some regenerate tracked
// files, which other tests read), with the environment a user sets pointed at a local
// bucket and the Segment stand-in; then it checks that the regenerated files
// are the checked-in ones. `go test ./...` is the suite itself: CI runs it.
func TestReadmeCommands(t *testing.T) {
	parallelCPU(t)
	cmds := readmeCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("only %d README commands found: %v", len(cmds), cmds)
	}
	repo := readmeRepo
	bucket := t.TempDir()
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 5, Seed: 81,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"}}); err != nil {
		t.Fatal(err)
	}
	srv := segmentapi.StartT(t, e2eWriteKey)
	env := append(os.Environ(),
		"CURRENTS_URL=file://"+bucket, "CURRENTS_WATCH=false", "CURRENTS_CHECKPOINT_IN_BUCKET=false",
		"SEGMENT_WRITE_KEY="+e2eWriteKey, "SEGMENT_ENDPOINT="+srv.URL(),
		"DEAD_LETTER_PATH="+filepath.Join(t.TempDir(), "dead.jsonl"), "CONNECT_HTTP_ADDRESS=127.0.0.1:0")
	ran := 0
	for _, c := range cmds {
		if c == "go test ./..." {
			continue
		}
		t.Run(c, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-c", c)
			cmd.Dir = repo
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", c, err, lastLines(string(out), 20))
			}
			if strings.Contains(c, "echo config/") && strings.Contains(string(out), e2eWriteKey) {
				t.Fatalf("echo printed the write key")
			}
		})
		ran++
	}
	if srv.UniqueMessageIDs() == 0 {
		t.Fatal("the README's production command sent nothing to Segment")
	}
	t.Logf("%d README commands run", ran)
	for _, dir := range []string{"tests/fixtures/sample", "docs/components"} {
		if diff := sameTree(t, filepath.Join(repoRoot, dir), filepath.Join(repo, dir)); diff != "" {
			t.Errorf("the README's commands regenerate %s otherwise than checked in: %s", dir, diff)
		}
	}
}

// copyRepo copies the repository's files to dst: those tracked, and those
// not yet added that git does not ignore (a new source file the binary
// needs), as a clone with the work tree's changes would have them.
func copyRepo(dst string) error {
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files (the tests copy the repository's files): %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if err := copyFile(filepath.Join(repoRoot, rel), filepath.Join(dst, rel)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	info, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil // deleted in the work tree, not yet in git
	}
	if err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, info.Mode().Perm())
}

// sameTree says how the files under got differ from those under want, or "".
func sameTree(t *testing.T, want, got string) string {
	t.Helper()
	files := map[string]bool{}
	for _, root := range []string{want, got} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(root, path)
				files[rel] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for rel := range files {
		w, werr := os.ReadFile(filepath.Join(want, rel))
		g, gerr := os.ReadFile(filepath.Join(got, rel))
		if werr != nil || gerr != nil || !bytes.Equal(w, g) {
			return rel + " differs"
		}
	}
	return ""
}
