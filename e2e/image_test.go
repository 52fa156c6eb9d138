package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// The image's user: distroless's nonroot.
const imageUID, imageGID = 65532, 65532

// imageLayout is the Dockerfile's final stage, as far as a test without a
// Docker engine can follow it.
type imageLayout struct {
	workdir          string
	copies           []imageCopy
	env              []string
	entrypoint, cmd  []string
	buildDirs        map[string]bool // made by the build stage's `RUN mkdir -p`
	buildBinary      string          // the build stage's binary
	userIsNonroot    bool
	finalStageParsed bool
}

type imageCopy struct {
	src, dst  string
	fromBuild bool
	chown     bool
}

func parseDockerfile(t *testing.T, text string) imageLayout {
	t.Helper()
	l := imageLayout{buildDirs: map[string]bool{}}
	final := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch op, args := fields[0], fields[1:]; {
		case op == "FROM":
			final = !strings.Contains(sc.Text(), " AS ")
		case !final && op == "RUN" && len(args) >= 3 && args[0] == "mkdir" && args[1] == "-p":
			for _, d := range args[2:] {
				l.buildDirs[d] = true
			}
		case !final && op == "RUN" && strings.Contains(sc.Text(), ".ci/build "):
			l.buildBinary = args[len(args)-1]
		case !final:
		case op == "WORKDIR":
			l.workdir = args[0]
		case op == "COPY":
			c := imageCopy{src: args[len(args)-2], dst: args[len(args)-1]}
			for _, a := range args[:len(args)-2] {
				c.fromBuild = c.fromBuild || a == "--from=build"
				c.chown = c.chown || a == "--chown=nonroot:nonroot"
			}
			l.copies = append(l.copies, c)
		case op == "ENV":
			l.env = append(l.env, args...)
		case op == "USER":
			l.userIsNonroot = args[0] == "nonroot:nonroot" || args[0] == "nonroot"
		case op == "ENTRYPOINT" || op == "CMD":
			var list []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(sc.Text(), op))), &list); err != nil {
				t.Fatalf("%s is not in exec form: %v", op, err)
			}
			if op == "ENTRYPOINT" {
				l.entrypoint = list
			} else {
				l.cmd = list
			}
			l.finalStageParsed = true
		}
	}
	if !l.finalStageParsed || !l.userIsNonroot || l.workdir == "" || l.buildBinary == "" {
		t.Fatalf("the Dockerfile's final stage was not understood: %+v", l)
	}
	return l
}

// layOut builds the image's filesystem under a new root: what the final
// stage copies, owned as the Dockerfile says (root unless --chown), the rest
// not writable by the image's user.
func (l imageLayout) layOut(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("", "image-root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		_ = os.RemoveAll(root)
	})
	var owned []string
	for _, c := range l.copies {
		dst := filepath.Join(root, c.dst)
		switch {
		case c.fromBuild && c.src == l.buildBinary:
			if err := copyFile(binary, dst); err != nil {
				t.Fatal(err)
			}
		case c.fromBuild && l.buildDirs[c.src]:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case c.fromBuild:
			t.Fatalf("COPY --from=build %s: not made by the build stage", c.src)
		default:
			if err := os.CopyFS(dst, os.DirFS(filepath.Join(repoRoot, c.src))); err != nil {
				t.Fatalf("COPY %s %s: %v", c.src, c.dst, err)
			}
		}
		if c.chown {
			owned = append(owned, dst)
		}
	}
	// Root runs the pipeline as the image's user, who cannot write what
	// root owns; another user is kept out by permissions instead.
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mine := false
		for _, o := range owned {
			mine = mine || p == o || strings.HasPrefix(p, o+"/")
		}
		switch {
		case mine && os.Geteuid() == 0:
			return os.Lchown(p, imageUID, imageGID)
		case d.IsDir() && !mine:
			return os.Chmod(p, 0o555)
		}
		return nil
	})
	return root
}

// run runs the image's entrypoint with args (its CMD when none) inside root,
// absolute paths in the command and in ENV moved under root.
func (l imageLayout) run(t *testing.T, root string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if len(args) == 0 {
		args = l.cmd
	}
	inRoot := func(s string) string {
		if strings.HasPrefix(s, "/") {
			return filepath.Join(root, s)
		}
		return s
	}
	argv := append(append([]string{}, l.entrypoint...), args...)
	for i := range argv {
		argv[i] = inRoot(argv[i])
	}
	// A pipeline that cannot write keeps retrying: bound the run.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = filepath.Join(root, l.workdir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/nonroot"}
	for _, kv := range l.env {
		k, v, _ := strings.Cut(kv, "=")
		cmd.Env = append(cmd.Env, k+"="+inRoot(v))
	}
	cmd.Env = append(cmd.Env, env...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: imageUID, Gid: imageGID}}
	}
	// runc gives the container's stdio to its user (fixStdioPermissions), so
	// that it can open /dev/stderr as the demo does: so does the test.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		_ = outW.Chown(imageUID, imageGID)
		_ = errW.Chown(imageUID, imageGID)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	outC, errC := make(chan string, 1), make(chan string, 1)
	go func() { data, _ := io.ReadAll(outR); outC <- string(data) }()
	go func() { data, _ := io.ReadAll(errR); errC <- string(data) }()
	stdout, stderr = <-outC, <-errC
	if err := cmd.Wait(); ctx.Err() != nil {
		return stdout, stderr, fmt.Errorf("still running after 2 minutes: %w", err)
	} else if err != nil {
		return stdout, stderr, err
	}
	return stdout, stderr, nil
}

// TestImageDefaultCommand runs the image's default command (the demo) in its
// filesystem, as its user: it must read the bundled sample and print the
// request bodies.
func TestImageDefaultCommand(t *testing.T) {
	parallelCPU(t)
	l := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	root := l.layOut(t)
	stdout, stderr, err := l.run(t, root, nil)
	if err != nil {
		t.Fatalf("the default command failed: %v\n%s\n%s", err, lastLines(stderr, 20), lastLines(stdout, 5))
	}
	bodies := strings.Count(stdout, `{"batch":[`)
	if bodies == 0 || strings.Contains(stderr, "permission denied") {
		t.Fatalf("%d request bodies printed; stderr:\n%s", bodies, lastLines(stderr, 20))
	}
}

// TestImageWritesDeadLetters runs the production pipeline in the image's
// filesystem, as its user, against a Segment that rejects every call: the
// dead letters land where the image's environment says, writable by its
// user, and the pipeline ends.
func TestImageWritesDeadLetters(t *testing.T) {
	parallelCPU(t)
	l := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	root := l.layOut(t)
	srv, err := segmentapi.Start(e2eWriteKey)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.FailNext(1_000_000, 400)
	sample := filepath.Join(root, "app/tests/fixtures/sample")
	_, stderr, err := l.run(t, root, []string{"CURRENTS_URL=file://" + sample, "CURRENTS_WATCH=false",
		"CURRENTS_CHECKPOINT_IN_BUCKET=false", "BRAZE_EVENT_TYPES=users.messages.email.Send",
		"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=" + srv.URL(), "CONNECT_HTTP_ADDRESS=127.0.0.1:0"},
		"run", "/app/config/currents_to_segment.yaml")
	if err != nil {
		t.Fatalf("the pipeline failed: %v\n%s", err, lastLines(stderr, 20))
	}
	var deadLetterPath string
	for _, kv := range l.env {
		if v, ok := strings.CutPrefix(kv, "DEAD_LETTER_PATH="); ok {
			deadLetterPath = filepath.Join(root, v)
		}
	}
	data, err := os.ReadFile(deadLetterPath)
	if err != nil || strings.Contains(stderr, "permission denied") {
		t.Fatalf("no dead letters at the image's DEAD_LETTER_PATH (%v); stderr:\n%s", err, lastLines(stderr, 20))
	}
	if n := bytes.Count(data, []byte("\n")); n == 0 {
		t.Fatal("the dead letter file is empty")
	} else {
		t.Logf("%d dead letters written as the image's user", n)
	}
}
