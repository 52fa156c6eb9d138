// Command docsgen writes the Markdown reference of this distribution's own
// components (those registered by the packages under plugin/) to
// docs/components/, from their config specs alone:
//
//	go run ./tests/docsgen          # (re)generate docs/components/
//	go run ./tests/docsgen -check   # report drift, exit 1 if any
//
// It keeps plugins_gen.go (the blank imports of every package under plugin/)
// in step with plugin/, re-running itself when that file changed. When a
// plugin package is deleted, delete plugins_gen.go too: it would not compile.
// A component is ours when a build without those imports (tag
// docsgen_baseline: benthos pure and io only) lacks it or specs it otherwise.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

const (
	modulePath  = "github.com/currents-connect/currents-connect"
	selfPkg     = "./tests/docsgen"
	docsDir     = "docs/components"
	baselineTag = "docsgen_baseline"
	reexecEnv   = "DOCSGEN_REEXEC"
)

// linkedPlugins lists the plugin packages compiled in; plugins_gen.go sets it.
var linkedPlugins []string

func main() {
	baseline := flag.Bool("baseline", false, "internal: print this build's component specs as JSON")
	check := flag.Bool("check", false, "compare instead of writing; exit 1 on drift")
	out := flag.String("out", "", "output directory (default <module>/"+docsDir+")")
	flag.Parse()
	if err := run(*baseline, *check, *out); err != nil {
		fmt.Fprintln(os.Stderr, "docsgen:", err)
		os.Exit(1)
	}
}

func run(baseline, check bool, out string) error {
	if baseline {
		if len(linkedPlugins) > 0 {
			return errors.New("-baseline needs -tags " + baselineTag)
		}
		return printSpecHashes(service.GlobalEnvironment())
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if out == "" {
		out = filepath.Join(root, docsDir)
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	changed, err := syncPluginsFile(root, !check)
	if err != nil {
		return err
	}
	if changed && check {
		return fmt.Errorf("%s does not import every package under plugin/ (run go run %s)", pluginsFile, selfPkg)
	}
	if changed {
		return reexec(root, out)
	}
	files, err := generateAll(root)
	if err != nil {
		return err
	}
	if check {
		return checkTree(out, files)
	}
	foreign, err := writeTree(out, files)
	for _, f := range foreign {
		fmt.Fprintf(os.Stderr, "docsgen: left %s, which it did not generate\n", f)
	}
	if err != nil {
		return err
	}
	fmt.Printf("docsgen: %d files in %s\n", len(files), out)
	return nil
}

// checkTree fails when dir differs from files written to a temp dir.
func checkTree(dir string, files map[string]string) error {
	tmp, err := os.MkdirTemp("", "docsgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := writeTree(tmp, files); err != nil {
		return err
	}
	drift, err := compareDirs(tmp, dir)
	if err != nil || len(drift) == 0 {
		return err
	}
	return fmt.Errorf("%s is out of date (run go run %s):\n  %s", dir, selfPkg, strings.Join(drift, "\n  "))
}

// reexec runs the generator again so that it compiles the new plugin imports.
func reexec(root, out string) error {
	if os.Getenv(reexecEnv) != "" {
		return errors.New("plugins_gen.go still changes after regeneration")
	}
	fmt.Println("docsgen: plugin packages changed, updated plugins_gen.go; running again")
	cmd := exec.Command("go", "run", selfPkg, "-out="+out)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), reexecEnv+"=1")
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		return err
	}
	return nil
}

// moduleRoot finds this module's go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && slices.Contains(strings.Fields(string(mod)), modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run inside module " + modulePath)
		}
		dir = parent
	}
}

// goCmd runs the go command in root and returns its standard output.
func goCmd(root string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}
