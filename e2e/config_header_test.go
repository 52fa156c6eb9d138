package e2e

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	// configVar is a variable a config interpolates: ${NAME} or ${NAME:default}.
	configVar = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)
	// mappingVar is a variable the mapping reads itself: env("NAME").
	mappingVar = regexp.MustCompile(`env\("([A-Z][A-Z0-9_]*)"\)`)
	// headerEntry is an entry of a header's list of variables: the names at
	// the start of a comment line, then the description after two spaces.
	headerEntry = regexp.MustCompile(`(?m)^#   ([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*) {2,}\S`)
)

// TestShippedConfigHeadersListTheirVariables holds the README's promise that
// each shipped config lists its settings at its top: every variable the
// config (or the mapping it imports) reads is named in its header comment,
// and every variable the header lists is read, so that a variable that does
// nothing in a config is not documented there.
func TestShippedConfigHeadersListTheirVariables(t *testing.T) {
	parallelCPU(t)
	var mapping []string
	blobls, _ := filepath.Glob(filepath.Join(repoRoot, "bloblang", "*.blobl"))
	for _, b := range blobls {
		rel, _ := filepath.Rel(repoRoot, b)
		for _, m := range mappingVar.FindAllStringSubmatch(readRepoFile(t, rel), -1) {
			mapping = append(mapping, m[1])
		}
	}
	if len(mapping) == 0 {
		t.Fatal("the mappings read no variable: the pattern no longer matches how they read them")
	}
	configs, _ := filepath.Glob(filepath.Join(repoRoot, "config", "*.yaml"))
	for _, c := range configs {
		rel, _ := filepath.Rel(repoRoot, c)
		lines := strings.Split(readRepoFile(t, rel), "\n")
		end := slices.IndexFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "#") })
		if end < 0 {
			t.Fatalf("%s is all comment", rel)
		}
		head, body := strings.Join(lines[:end], "\n"), lines[end:]
		read := slices.Clone(mapping)
		for _, m := range configVar.FindAllStringSubmatch(strings.Join(body, "\n"), -1) {
			read = append(read, m[1])
			if !regexp.MustCompile(`\b` + m[1] + `\b`).MatchString(head) {
				t.Errorf("%s reads %s, which its header does not name", rel, m[1])
			}
		}
		for _, e := range headerEntry.FindAllStringSubmatch(head, -1) {
			for _, name := range strings.Split(e[1], ", ") {
				if !slices.Contains(read, name) {
					t.Errorf("%s's header lists %s, which neither the config nor the mapping reads", rel, name)
				}
			}
		}
	}
}
