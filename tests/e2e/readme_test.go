package e2e

import (
	"context"
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
// the repository root, with the environment a user sets pointed at a local
// bucket and the Segment stand-in. `go test ./...` is the suite itself: CI
// runs it.
func TestReadmeCommands(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("only %d README commands found: %v", len(cmds), cmds)
	}
	bucket := t.TempDir()
	if _, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 5, Seed: 81,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Send"}}); err != nil {
		t.Fatal(err)
	}
	srv, err := segmentapi.Start(e2eWriteKey)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
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
			cmd.Dir = repoRoot
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
}
