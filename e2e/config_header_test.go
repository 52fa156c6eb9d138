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
		head, body := configHeader(t, rel)
		read := slices.Clone(mapping)
		for _, m := range configVar.FindAllStringSubmatch(body, -1) {
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

// configHeader splits a shipped config into its header comment and the rest.
func configHeader(t *testing.T, rel string) (head, body string) {
	t.Helper()
	lines := strings.Split(readRepoFile(t, rel), "\n")
	end := slices.IndexFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "#") })
	if end < 0 {
		t.Fatalf("%s is all comment", rel)
	}
	return strings.Join(lines[:end], "\n"), strings.Join(lines[end:], "\n")
}

var (
	// configDefault is a variable a config interpolates with a default.
	configDefault = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*):([^}]+)\}`)
	// headerText is a header entry: its names, and its text with the lines
	// that continue it.
	headerText = regexp.MustCompile(`(?m)^#   ([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*) {2,}(\S.*(?:\n# {10,}\S.*)*)`)
	// deferral is an entry that sends the reader to another config's.
	deferral = regexp.MustCompile(`^as in (config/\w+\.yaml)`)
	// docDefault is a value the docs give beside a variable, as its default:
	// `NAME` (value, `NAME`, value, `NAME` (default `value`), `NAME`, by
	// default `value`.
	docDefault = regexp.MustCompile("`([A-Z][A-Z0-9_]*)`(?: \\(default | \\(|, by default |, )`?" +
		"([0-9][0-9.:]*(?: ?(?:s|m|h|KiB|MiB|GiB|seconds?|minutes?|hours?)\\b)?|\\./[^`\\s]+)")
	// unitWords are the units the docs spell out, as durations write them.
	unitWords = strings.NewReplacer(" ", "", "seconds", "s", "second", "s", "minutes", "m", "minute", "m", "hours", "h", "hour", "h")
)

// binarySets are variables the binary sets when the environment does not,
// so that the config's own default is not the one a user gets.
var binarySets = []string{"CURRENTS_PIPELINE_THREADS"}

// TestDocsGiveTheConfigsDefaults checks the defaults the docs give the
// variables of the shipped configs: each header entry of a variable the
// config reads with a default gives that default, in parentheses (or sends
// the reader to another config's entry, which does); and where the README
// or a page gives a value beside such a variable's name, it is one of the
// defaults the configs give it.
func TestDocsGiveTheConfigsDefaults(t *testing.T) {
	parallelCPU(t)
	configs, _ := filepath.Glob(filepath.Join(repoRoot, "config", "*.yaml"))
	entries := map[string]map[string]string{} // config -> variable -> entry text
	bodies := map[string]string{}
	defaults := map[string][]string{}
	for _, c := range configs {
		rel, _ := filepath.Rel(repoRoot, c)
		head, body := configHeader(t, filepath.ToSlash(rel))
		rel = filepath.ToSlash(rel)
		entries[rel], bodies[rel] = map[string]string{}, body
		for _, e := range headerText.FindAllStringSubmatch(head, -1) {
			for _, name := range strings.Split(e[1], ", ") {
				entries[rel][name] = strings.Join(strings.Fields(strings.ReplaceAll(e[2], "\n#", " ")), " ")
			}
		}
	}
	checked := 0
	for rel, body := range bodies {
		for _, m := range configDefault.FindAllStringSubmatch(body, -1) {
			name, value := m[1], m[2]
			if slices.Contains(binarySets, name) {
				continue
			}
			if !slices.Contains(defaults[name], value) {
				defaults[name] = append(defaults[name], value)
			}
			entry, ok := entries[rel][name]
			if d := deferral.FindStringSubmatch(entry); d != nil {
				entry, ok = entries[d[1]][name]
			}
			if !ok {
				continue // TestShippedConfigHeadersListTheirVariables says whether it must be listed
			}
			checked++
			if !strings.Contains(entry, "("+value) {
				t.Errorf("%s reads ${%s:%s}, but its header's entry does not give that default: %q", rel, name, value, entry)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d defaults checked in the configs' headers: the patterns no longer match them", checked)
	}
	for doc, text := range userDocs(t) {
		for _, m := range docDefault.FindAllStringSubmatch(text, -1) {
			name, value := m[1], unitWords.Replace(m[2])
			if len(defaults[name]) > 0 && !slices.Contains(defaults[name], value) {
				t.Errorf("%s gives %s the value %q beside its name, but the configs' default is %q", doc, name, m[2], defaults[name])
			}
		}
	}
}
