package e2e

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestDockerImageBuildsLikeCI checks what can be checked of the image with no
// Docker engine here: the Dockerfile builds with .ci/build, the script CI
// builds with, and that script's binary is static, stripped, built with the
// profile (cmd/connect/default.pgo), version-stamped and carries time zone
// data; the image runs as non-root from /app, holding bloblang/ and config/
// so Bloblang imports resolve.
func TestDockerImageBuildsLikeCI(t *testing.T) {
	parallelCPU(t)
	dockerfile := readRepoFile(t, "Dockerfile")
	ci := readRepoFile(t, ".ci/run")
	if !regexp.MustCompile(`(?m)^RUN .*\.ci/build /out/connect`).MatchString(dockerfile) {
		t.Fatal("the Dockerfile does not build with .ci/build")
	}
	if !strings.Contains(ci, ".ci/build ") {
		t.Fatal(".ci/run does not build with .ci/build")
	}
	for _, line := range []string{"WORKDIR /app", "COPY bloblang/ /app/bloblang/", "COPY config/ /app/config/", "USER nonroot"} {
		if !strings.Contains(dockerfile, line) {
			t.Errorf("the Dockerfile lacks %q", line)
		}
	}

	out := filepath.Join(t.TempDir(), "connect")
	build := exec.Command("bash", ".ci/build", out)
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "VERSION=9.9.9-dockertest")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf(".ci/build: %v\n%s", err, msg)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked: a distroless/static image cannot run it")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary is not stripped")
	}
	// Built with the profile cmd/connect/default.pgo (Go's profile-guided
	// optimisation, docs/benchmarks.md): about a tenth less CPU a line.
	info, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(info.Settings, func(s debug.BuildSetting) bool { return s.Key == "-pgo" && s.Value == "default.pgo" }) {
		t.Errorf("the binary was not built with cmd/connect/default.pgo: %v", info.Settings)
	}
	version, err := exec.Command(out, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(version), "9.9.9-dockertest") {
		t.Fatalf("--version: %v\n%s", err, version)
	}
	// Time zone data is compiled in (time/tzdata), as a distroless image has
	// no zoneinfo: this machine has one, so the link is what can be checked.
	deps, err := exec.Command("go", "list", "-deps", "../cmd/connect").Output()
	if err != nil || !strings.Contains(string(deps), "time/tzdata\n") {
		t.Fatalf("cmd/connect does not embed time/tzdata: %v", err)
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestDefaultDeadLettersStayOutOfGitAndImage: run from the repository root as
// the README says, a shipped config writes its dead letters (whole events:
// emails, phone numbers) to its default DEAD_LETTER_PATH there. Git must not
// offer that file for a commit, nor the Docker build send it as context.
func TestDefaultDeadLettersStayOutOfGitAndImage(t *testing.T) {
	parallelCPU(t)
	def := regexp.MustCompile(`\$\{DEAD_LETTER_PATH:\./([^}]+)\}`)
	dockerignore := strings.Fields(readRepoFile(t, ".dockerignore"))
	for _, config := range []string{"config/currents_to_segment.yaml", "config/currents_notifications_to_segment.yaml", "config/currents_http_to_segment.yaml",
		"config/dead_letters_to_segment.yaml"} {
		m := def.FindStringSubmatch(readRepoFile(t, config))
		if m == nil {
			t.Fatalf("%s has no relative default DEAD_LETTER_PATH", config)
		}
		check := exec.Command("git", "check-ignore", "-q", m[1])
		check.Dir = repoRoot
		if err := check.Run(); err != nil {
			t.Errorf("git does not ignore %s, %s's default dead letter file: %v", m[1], config, err)
		}
		if !slices.Contains(dockerignore, m[1]) {
			t.Errorf(".dockerignore does not name %s, %s's default dead letter file", m[1], config)
		}
	}
}
