// Command docsgen writes the Markdown reference of this distribution's own
// components (ourList, in components.go) to docs/components/, from their
// config specs alone:
//
//	go run ./tests/docsgen          # (re)generate docs/components/
//	go run ./tests/docsgen -check   # report drift, exit 1 if any
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	modulePath = "github.com/currents-connect/currents-connect"
	docsDir    = "docs/components"
	regenerate = "regenerate with: go run ./tests/docsgen"
)

func main() {
	check := flag.Bool("check", false, "compare instead of writing; exit 1 on drift")
	out := flag.String("out", "", "output directory (default <module>/"+docsDir+")")
	flag.Parse()
	if err := run(*check, *out); err != nil {
		fmt.Fprintln(os.Stderr, "docsgen:", err)
		os.Exit(1)
	}
}

func run(check bool, out string) error {
	if out == "" {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, docsDir)
	}
	files, err := generateAll()
	if err != nil {
		return err
	}
	if check {
		drift, err := drift(out, files)
		if err != nil || len(drift) == 0 {
			return err
		}
		return fmt.Errorf("%s is out of date (%s):\n  %s", out, regenerate, strings.Join(drift, "\n  "))
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

// drift lists how dir differs from files, which it writes to a temp dir to
// compare: it never writes dir.
func drift(dir string, files map[string]string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "docsgen")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if _, err := writeTree(tmp, files); err != nil {
		return nil, err
	}
	return compareDirs(tmp, dir)
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
