package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const regenerate = "regenerate with: go run ./tests/docsgen"

var generated = sync.OnceValues(func() (map[string]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	return generateAll(root)
})

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

func TestPluginImportsCurrent(t *testing.T) {
	root, _ := setup(t)
	pkgs, err := pluginPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pkgs, linkedPlugins) {
		t.Fatalf("%s imports %v, plugin/ holds %v; %s", pluginsFile, linkedPlugins, pkgs, regenerate)
	}
}

func TestDocsUpToDate(t *testing.T) {
	root, files := setup(t)
	tmp := t.TempDir()
	if _, err := writeTree(tmp, files); err != nil {
		t.Fatal(err)
	}
	drift, err := compareDirs(tmp, filepath.Join(root, docsDir))
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

func TestEveryComponentHasPage(t *testing.T) {
	root, files := setup(t)
	base, err := baselineSpecs(root)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := ourComponents(service.GlobalEnvironment(), base)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, c := range ours {
		want[c.page()] = true
	}
	// Cross-check the environment diff against the registrations in the source.
	for _, page := range registeredInSource(t, filepath.Join(root, "plugin")) {
		if !want[page] {
			t.Errorf("plugin/ registers %s but the environment diff missed it", page)
		}
		want[page] = true
	}
	if len(want) == 0 {
		t.Fatal("no components of ours found")
	}
	for page := range want {
		if _, ok := files[page]; !ok {
			t.Errorf("no page %s", page)
		}
	}
}

var registerCall = regexp.MustCompile(`^(Must)?Register`)

// registerKinds maps words of service.MustRegister* function names to kinds.
var registerKinds = []struct{ word, dir string }{
	{"Scanner", "scanners"}, {"RateLimit", "rate_limits"}, {"Buffer", "buffers"},
	{"Cache", "caches"}, {"Processor", "processors"}, {"Input", "inputs"},
	{"Output", "outputs"}, {"Metrics", "metrics"}, {"Tracer", "tracers"},
}

// registeredInSource finds Register*("name", …) calls with a literal name in
// the non-test Go files under dir, as page paths.
func registeredInSource(t *testing.T, dir string) []string {
	var pages []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			lit, isLit := call.Args[0].(*ast.BasicLit)
			if !ok || !isLit || lit.Kind != token.STRING || !registerCall.MatchString(sel.Sel.Name) {
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			for _, k := range registerKinds {
				if strings.Contains(sel.Sel.Name, k.word) {
					pages = append(pages, k.dir+"/"+name+".md")
					break
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
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
