package e2e

// The user-facing documentation names metrics, environment variables, log
// lines and tests; these checks hold each name to the code, so that a
// rename in the code that the docs miss fails here instead of sending a user
// after something that is not there.

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// userDocs are the files a user reads: the README, docs/ (the generated
// component pages included), the shipped configs' comments and the Dockerfile.
func userDocs(t *testing.T) map[string]string {
	t.Helper()
	docs := map[string]string{}
	for _, pattern := range []string{"README.md", "Dockerfile", "config/*.yaml", "docs/*.md", "docs/components/*/*.md"} {
		paths, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no file matches %s: %v", pattern, err)
		}
		for _, p := range paths {
			rel, _ := filepath.Rel(repoRoot, p)
			docs[filepath.ToSlash(rel)] = readRepoFile(t, rel)
		}
	}
	return docs
}

// goSources returns the non-test Go files under the repository's dirs, by
// slash path.
func goSources(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	srcs := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			data, err := os.ReadFile(path)
			rel, _ := filepath.Rel(repoRoot, path)
			srcs[filepath.ToSlash(rel)] = string(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return srcs
}

var (
	// metricCtor is a metric the code registers: its name and label arguments.
	metricCtor = regexp.MustCompile(`New(?:Counter|Gauge|Timer)\("([a-z_]+)"((?:,\s*[\w"]+)*)\)`)
	// countName is a counter a shipped config's braze_currents_count keeps.
	countName = regexp.MustCompile(`(?m)^\s+(?:errored_)?name: ([a-z_]+)\s*$`)
	// stringConst is a Go string constant, `name = "value"`.
	stringConst = regexp.MustCompile(`(\w+)\s*=\s*"([a-z_]+)"`)
	// docMetric is a metric of ours as the docs write it, in backticks:
	// name, name{label} or name{label="value"}; a/b/c shares a's stem.
	docMetric = regexp.MustCompile("`((?:braze_currents|segment|currents)_[a-z0-9_/]+)(?:\\{([a-z_]+)(?:=\"[^\"]*\")?\\})?`")
	// registerName is a component registered by the code.
	registerName = regexp.MustCompile(`MustRegister\w+\(\s*"([a-z_]+)"`)
	// blobMap is a Bloblang map a mapping file defines.
	blobMap = regexp.MustCompile(`(?m)^map ([a-z_]+)`)
	// metaConst is a metadata key the plugins set.
	metaConst = regexp.MustCompile(`\bMeta\w*\s*=\s*"([a-z_]+)"`)
	// subTest is a subtest or sub-benchmark the docs may cite.
	subTest = regexp.MustCompile(`\.Run\("([a-z_]+)"`)
)

// retiredMetrics are metrics the README's Upgrading section says are gone.
var retiredMetrics = []string{"currents_events_in"}

// TestDocsNameExportedMetrics checks every metric of ours the docs name, and
// the label they give it, against the metrics the code registers (a timer
// x_ns is exported as the histogram x_seconds) and the counters the shipped
// configs' braze_currents_count processors keep; and that the component
// reference names every metric the code registers.
func TestDocsNameExportedMetrics(t *testing.T) {
	parallelCPU(t)
	srcs := goSources(t, "plugin")
	consts := map[string]string{}
	for _, src := range srcs {
		for _, m := range stringConst.FindAllStringSubmatch(src, -1) {
			consts[m[1]] = m[2]
		}
	}
	labels := map[string][]string{} // exported name -> labels
	var registered []string
	notMetrics := map[string]bool{}
	for path, src := range srcs {
		for _, m := range metricCtor.FindAllStringSubmatch(src, -1) {
			var ls []string
			for _, arg := range strings.Split(m[2], ",") {
				if arg = strings.TrimSpace(arg); arg == "" {
					continue
				}
				if v, ok := consts[arg]; ok {
					arg = v
				} else if strings.HasPrefix(arg, `"`) {
					arg = strings.Trim(arg, `"`)
				} else {
					t.Fatalf("%s: label %s of %s: no string constant of that name", path, arg, m[1])
				}
				ls = append(ls, arg)
			}
			labels[m[1]] = ls
			registered = append(registered, m[1])
			if stem, ok := strings.CutSuffix(m[1], "_ns"); ok {
				for _, suffix := range []string{"_seconds", "_seconds_bucket", "_seconds_sum", "_seconds_count"} {
					labels[stem+suffix] = ls
				}
			}
		}
		for _, re := range []*regexp.Regexp{registerName, metaConst} {
			for _, m := range re.FindAllStringSubmatch(src, -1) {
				notMetrics[m[1]] = true
			}
		}
	}
	tests, _ := filepath.Glob(filepath.Join(repoRoot, "plugin", "*", "*_test.go"))
	for _, p := range tests {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range subTest.FindAllStringSubmatch(string(data), -1) {
			notMetrics[m[1]] = true
		}
	}
	if len(labels) < 10 {
		t.Fatalf("only %d metrics found in plugin/: the pattern no longer matches how they are registered", len(labels))
	}
	for _, name := range []string{"config/*.yaml", "bloblang/*.blobl", "plugin/*/*.txt", "tests/fixtures/facts/*.tsv"} {
		paths, _ := filepath.Glob(filepath.Join(repoRoot, name))
		for _, p := range paths {
			notMetrics[strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))] = true
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(p, ".yaml") {
				for _, m := range countName.FindAllStringSubmatch(string(data), -1) {
					labels[m[1]] = []string{"event_type"}
				}
			}
			for _, m := range blobMap.FindAllStringSubmatch(string(data), -1) {
				notMetrics[m[1]] = true
			}
		}
	}
	docs := userDocs(t)
	var reference strings.Builder
	for doc, text := range docs {
		if strings.HasPrefix(doc, "docs/components/") {
			reference.WriteString(text)
		}
	}
	for _, name := range registered {
		if !strings.Contains(reference.String(), "`"+name+"`") {
			t.Errorf("no page of docs/components names the metric %s: add it to its component's spec", name)
		}
	}
	for doc, text := range docs {
		for _, m := range docMetric.FindAllStringSubmatch(text, -1) {
			parts := strings.Split(m[1], "/")
			stem := parts[0][:strings.LastIndex(parts[0], "_")+1]
			for i, name := range parts {
				if i > 0 {
					name = stem + name
				}
				if notMetrics[name] || slices.Contains(retiredMetrics, name) || strings.HasSuffix(name, "_") {
					continue
				}
				ls, ok := labels[name]
				switch {
				case !ok:
					t.Errorf("%s names the metric %s, which the code does not export", doc, name)
				case m[2] != "" && !slices.Contains(ls, m[2]):
					t.Errorf("%s names the metric %s{%s}, whose labels are %q", doc, name, m[2], ls)
				}
			}
		}
	}
	for _, name := range retiredMetrics {
		if _, ok := labels[name]; ok {
			t.Errorf("%s is listed as retired but the code exports it", name)
		}
	}
}

var (
	// docEnvVar is an environment variable of ours as the docs write it.
	docEnvVar = regexp.MustCompile(`\b(?:CURRENTS|BRAZE|SEGMENT|DEAD_LETTER|CONNECT)_[A-Z0-9_]*[A-Z0-9]\b`)
	// goEnvRead is a variable the Go code reads or sets by name.
	goEnvRead = regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`)
)

// TestDocsNameReadEnvironment checks that every variable of ours the docs
// name is one a shipped config or mapping interpolates, or the binary reads.
func TestDocsNameReadEnvironment(t *testing.T) {
	parallelCPU(t)
	read := map[string]bool{}
	for _, pattern := range []string{"config/*.yaml", "bloblang/*.blobl"} {
		paths, _ := filepath.Glob(filepath.Join(repoRoot, pattern))
		for _, p := range paths {
			rel, _ := filepath.Rel(repoRoot, p)
			text := readRepoFile(t, rel)
			for _, re := range []*regexp.Regexp{configVar, mappingVar} {
				for _, m := range re.FindAllStringSubmatch(text, -1) {
					read[m[1]] = true
				}
			}
		}
	}
	for _, src := range goSources(t, "cmd", "plugin", "internal") {
		for _, m := range goEnvRead.FindAllStringSubmatch(src, -1) {
			read[m[1]] = true
		}
	}
	if !read["SEGMENT_WRITE_KEY"] || !read["CURRENTS_PIPELINE_THREADS"] {
		t.Fatal("the patterns no longer find the variables the configs and the binary read")
	}
	for doc, text := range userDocs(t) {
		for _, name := range docEnvVar.FindAllString(text, -1) {
			if !read[name] {
				t.Errorf("%s names %s, which no shipped config, mapping or the binary reads", doc, name)
			}
		}
	}
}

var (
	// testRef is a test, fuzzer or benchmark the docs name.
	testRef = regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark)[A-Z]\w*`)
	// runFlag is a -run, -fuzz or -bench pattern in a documented command.
	runFlag = regexp.MustCompile(`(?:^|\s)-(?:run|fuzz|bench) ([A-Za-z]\w*)`)
	// testFunc is a test, fuzzer or benchmark the code defines.
	testFunc = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
)

// TestDocsNameExistingTests checks the tests the docs cite as evidence or
// tell users to run (by name, or by a -run, -fuzz or -bench pattern) exist, and that
// docs/testing.md and the README's list of long runs name every fuzzer.
func TestDocsNameExistingTests(t *testing.T) {
	parallelCPU(t)
	var funcs []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		for _, m := range testFunc.FindAllStringSubmatch(string(data), -1) {
			funcs = append(funcs, m[1])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	docs := userDocs(t)
	for doc, text := range docs {
		for _, name := range testRef.FindAllString(text, -1) {
			if name != "TestEvent" && !slices.Contains(funcs, name) { // s3:TestEvent is S3's
				t.Errorf("%s names %s, which no test file defines", doc, name)
			}
		}
		for _, m := range runFlag.FindAllStringSubmatch(text, -1) {
			re := regexp.MustCompile(m[1])
			if !slices.ContainsFunc(funcs, re.MatchString) {
				t.Errorf("%s runs %s, which matches no test", doc, strings.TrimSpace(m[0]))
			}
		}
	}
	for _, f := range funcs {
		for _, doc := range []string{"docs/testing.md", "README.md"} {
			if strings.HasPrefix(f, "Fuzz") && !strings.Contains(docs[doc], f) {
				t.Errorf("%s does not list the fuzzer %s", doc, f)
			}
		}
	}
}

// TestDocsNameEveryPackage checks that the README's tree of the repository
// (Development) names every package directory under cmd/, plugin/, internal/
// and tests/, and that docs/architecture.md's table of packages names every
// one under plugin/ and internal/, so that a package added is not missing
// from the map an engineer reads first.
func TestDocsNameEveryPackage(t *testing.T) {
	parallelCPU(t)
	readme := readRepoFile(t, "README.md")
	start := strings.Index(readme, "## Development")
	if start < 0 {
		t.Fatal("the README has no Development section")
	}
	tree := readme[start:]
	architecture := readRepoFile(t, "docs/architecture.md")
	var dirs []string
	for _, parent := range []string{"cmd", "plugin", "internal", "tests"} {
		entries, err := os.ReadDir(filepath.Join(repoRoot, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, parent+"/"+e.Name())
			}
		}
	}
	if len(dirs) < 20 {
		t.Fatalf("only %d package directories found: %v", len(dirs), dirs)
	}
	for _, dir := range dirs {
		if !strings.Contains(tree, dir+"/") {
			t.Errorf("the README's Development tree does not name %s/", dir)
		}
		if !strings.HasPrefix(dir, "cmd/") && !strings.HasPrefix(dir, "tests/") && !strings.Contains(architecture, "`"+dir+"`") {
			t.Errorf("docs/architecture.md's table of packages does not name %s", dir)
		}
	}
}
