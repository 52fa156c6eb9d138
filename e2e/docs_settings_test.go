package e2e

// The messages and the settings the docs quote, held
// to the code like the names in docs_names_test.go.

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// troubleRow is a row of the README's troubleshooting table: its symptom.
	troubleRow = regexp.MustCompile(`(?m)^\| ([^|]+) \|`)
	// quoted is a backticked text in a symptom.
	quoted = regexp.MustCompile("`([^`]+)`")
	// valuePart is where a quoted log line has a value the code formats in:
	// an ellipsis, a number, a quote, an identifier (a field, a variable).
	valuePart = `…|[0-9]+[a-z]*|"|[()]|\b\w+_\w+\b`
	// logLine is a log line quoted in the docs: capitalised, a value left out.
	logLine = regexp.MustCompile("`([A-Z][a-z][^`]*…[^`]*)`")
	// listedName is a component name in the output of connect list.
	listedName = regexp.MustCompile(`(?m)^  - ([a-z_]+)$`)
)

// TestDocsQuoteRealMessages checks that each log line or error the README's
// troubleshooting table quotes, and each log line the docs quote with a value
// left out (…), is one the code writes: each piece of it between the values
// (…, numbers, identifiers) is in the source of the binary (ours, or
// benthos's for Connect's own lines).
func TestDocsQuoteRealMessages(t *testing.T) {
	parallelCPU(t)
	readme := readRepoFile(t, "README.md")
	start := strings.Index(readme, "## Troubleshooting")
	end := strings.Index(readme[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("the README has no Troubleshooting section")
	}
	var code strings.Builder
	for _, src := range goSources(t, "cmd", "plugin", "internal") {
		code.WriteString(src)
	}
	blobls, _ := filepath.Glob(filepath.Join(repoRoot, "bloblang", "*.blobl"))
	for _, b := range blobls {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(data)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/redpanda-data/benthos/v4").Output()
	if err != nil {
		t.Fatalf("finding benthos's source: %v", err)
	}
	benthos := strings.TrimSpace(string(out))
	for _, dir := range []string{"internal/component", "internal/bundle", "internal/impl/io", "internal/cli/common", "internal/bloblang/parser"} {
		err := filepath.WalkDir(filepath.Join(benthos, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			data, err := os.ReadFile(path)
			code.Write(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	source := code.String()
	// Connect formats component kinds and names into its lines too.
	names := []string{"input", "output", "processor"}
	list, err := exec.Command(binary, "list").Output()
	if err != nil {
		t.Fatalf("connect list: %v", err)
	}
	for _, m := range listedName.FindAllStringSubmatch(string(list), -1) {
		names = append(names, m[1])
	}
	literalPiece := regexp.MustCompile(valuePart + `|\b(?:` + strings.Join(names, "|") + `)\b`)
	// The table's symptoms, and the log lines quoted anywhere in the docs
	// (a capitalised message with a value left out: "Skipping corrupt object …").
	type quote struct{ where, text string }
	var quotes []quote
	for _, row := range troubleRow.FindAllStringSubmatch(readme[start:start+1+end], -1) {
		for _, q := range quoted.FindAllStringSubmatch(row[1], -1) {
			if !strings.ContainsAny(q[1], "_") || strings.Contains(q[1], " ") { // not a metric or a variable
				quotes = append(quotes, quote{"README.md's troubleshooting", q[1]})
			}
		}
	}
	fromTable := len(quotes)
	for doc, text := range userDocs(t) {
		for _, q := range logLine.FindAllStringSubmatch(text, -1) {
			quotes = append(quotes, quote{doc, strings.Join(strings.Fields(q[1]), " ")}) // wrapped lines
		}
	}
	checked := 0
	for i, q := range quotes {
		for _, piece := range literalPiece.Split(q.text, -1) {
			if piece = strings.TrimSpace(piece); len(piece) < 10 {
				continue
			}
			if i < fromTable {
				checked++
			}
			if !inSource(source, piece) {
				t.Errorf("%s quotes %q, but no source of the binary has %q", q.where, q.text, piece)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d quoted pieces of the troubleshooting table checked: the table's layout changed", checked)
	}
}

// inSource says whether piece is in source as it is, or as a format string
// and a string the code formats into it, in either order ("refused %s" and
// "the write key"; "event types" and "Found %s under prefix").
func inSource(source, piece string) bool {
	if strings.Contains(source, piece) {
		return true
	}
	for i, r := range piece {
		if r != ' ' {
			continue
		}
		if strings.Contains(source, piece[:i+1]+"%") && strings.Contains(source, `"`+piece[i+1:]) {
			return true
		}
		if strings.Contains(source, piece[:i]+`"`) && strings.Contains(source, "%s"+piece[i:]) {
			return true
		}
	}
	return false
}

// fieldSetting is a setting as the docs write one to copy, `name: value` or
// `a.b: value`.
var fieldSetting = regexp.MustCompile("`([a-z_][a-z0-9_]*(?:\\.[a-z_][a-z0-9_]*)*): [^`]+`")

// otherSystems are keys the docs quote from other systems' formats.
var otherSystems = map[string]string{"strategy": "a Kubernetes Deployment's", "source": "an EventBridge event's",
	"replicas": "a NATS stream's", "discard": "a NATS stream's", "persist_mode": "a NATS stream's", "sync_interval": "a NATS server's"}

// TestDocsSettingsAreFields checks that each `name: value` setting the docs
// quote names fields that exist: every part of name is a field of some
// component the binary has, ours or Connect's (its JSON schema lists them).
func TestDocsSettingsAreFields(t *testing.T) {
	parallelCPU(t)
	out, err := exec.Command(binary, "list", "--format", "jsonschema").Output()
	if err != nil {
		t.Fatalf("connect list --format jsonschema: %v", err)
	}
	var schema any
	if err := json.Unmarshal(out, &schema); err != nil {
		t.Fatal(err)
	}
	fields := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for name := range props {
					fields[name] = true
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(schema)
	if !fields["max_parallel_objects"] || !fields["shutdown_timeout"] {
		t.Fatal("the schema walk no longer finds the fields")
	}
	for doc, text := range userDocs(t) {
		for _, m := range fieldSetting.FindAllStringSubmatch(text, -1) {
			if otherSystems[m[1]] != "" {
				continue
			}
			for _, part := range strings.Split(m[1], ".") {
				if !fields[part] {
					t.Errorf("%s quotes %s, but no component of the binary has a field %s", doc, m[0], part)
				}
			}
		}
	}
}
