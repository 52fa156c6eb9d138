package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var generated = sync.OnceValues(generateAll)

// setup returns the module root and what the generator makes now.
func setup(t *testing.T) (string, map[string]string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	return root, files
}

// TestDocsUpToDate compares the checked-in pages with fresh ones, written to
// a temp dir: the test never writes the repository.
func TestDocsUpToDate(t *testing.T) {
	root, files := setup(t)
	drift, err := drift(filepath.Join(root, docsDir), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Fatalf("%s/ differs from what the component specs generate (%s; extra files it did not write must be removed by hand):\n  %s",
			docsDir, regenerate, strings.Join(drift, "\n  "))
	}
}

func TestIndexListsEveryPage(t *testing.T) {
	_, files := setup(t)
	var linked []string
	for _, m := range regexp.MustCompile(`\]\(([^)]+\.md)\)`).FindAllStringSubmatch(files[indexPage], -1) {
		linked = append(linked, m[1])
	}
	var pages []string
	for rel := range files {
		if rel != indexPage {
			pages = append(pages, rel)
		}
	}
	slices.Sort(linked)
	slices.Sort(pages)
	if !slices.Equal(linked, pages) {
		t.Fatalf("%s links %v, pages are %v", indexPage, linked, pages)
	}
}

// registerCall is a service.MustRegister…("name", …) call: its function
// name's suffix and the component's name.
var registerCall = regexp.MustCompile(`MustRegister(\w+)\(\s*"([^"]+)"`)

// registerKinds maps words of those function names to kind dirs.
var registerKinds = []struct{ word, dir string }{
	{"Scanner", "scanners"}, {"RateLimit", "rate_limits"}, {"Buffer", "buffers"},
	{"Cache", "caches"}, {"Processor", "processors"}, {"Input", "inputs"},
	{"Output", "outputs"}, {"Metrics", "metrics"}, {"Tracer", "tracers"},
}

// TestComponentList checks ourList both ways: each component in it is
// registered in the binary's environment (ourComponents fails otherwise),
// and each component the non-test code under plugin/ registers is in it.
func TestComponentList(t *testing.T) {
	root, files := setup(t)
	if len(files) != len(ourList)+1 {
		t.Errorf("%d pages for %d components", len(files)-1, len(ourList))
	}
	listed := map[string]bool{}
	for _, o := range ourList {
		listed[o.dir+"/"+o.name] = true
	}
	found := 0
	err := filepath.WalkDir(filepath.Join(root, "plugin"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		for _, m := range registerCall.FindAllStringSubmatch(string(src), -1) {
			found++
			i := slices.IndexFunc(registerKinds, func(k struct{ word, dir string }) bool { return strings.Contains(m[1], k.word) })
			if i < 0 {
				t.Errorf("%s: MustRegister%s(%q): unknown kind", path, m[1], m[2])
			} else if !listed[registerKinds[i].dir+"/"+m[2]] {
				t.Errorf("%s registers %s %s, which ourList (components.go) lacks", path, registerKinds[i].dir, m[2])
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(ourList) {
		t.Errorf("plugin/ has %d MustRegister calls, ourList %d components", found, len(ourList))
	}
}

func TestWriteTreeRemovesStalePages(t *testing.T) {
	_, files := setup(t)
	dir := t.TempDir()
	stale := filepath.Join(dir, "inputs", "gone.md")
	foreign := filepath.Join(dir, "notes.md")
	for path, content := range map[string]string{stale: marker + "old page\n", foreign: "hand-written\n"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // idempotent
		foreign, err := writeTree(dir, files)
		if err != nil || len(foreign) != 1 || filepath.Base(foreign[0]) != "notes.md" {
			t.Fatalf("writeTree = %q, %v; want only notes.md left", foreign, err)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale generated page kept: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("hand-written file removed: %v", err)
	}
	want := t.TempDir()
	if _, err := writeTree(want, files); err != nil {
		t.Fatal(err)
	}
	drift, err := compareDirs(want, dir)
	if err != nil || !slices.Equal(drift, []string{"extra:   notes.md"}) {
		t.Errorf("drift = %q, %v; want only the hand-written file", drift, err)
	}
}

func TestAsciidocToMarkdown(t *testing.T) {
	in := "Intro.\n\n== Metadata\n\n=== Sub\n\n```\n== kept\n```\nSee xref:components:inputs/about.adoc#x[inputs].\n"
	want := "Intro.\n\n## Metadata\n\n### Sub\n\n```\n== kept\n```\nSee [inputs](https://docs.redpanda.com/redpanda-connect/components/inputs/about/#x).\n"
	if got := asciidocToMarkdown(in); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
