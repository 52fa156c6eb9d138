package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const indexPage = "README.md"

// generateAll renders the pages of our components and the index, keyed by
// slash path relative to docs/components.
func generateAll() (map[string]string, error) {
	found, err := ourComponents(service.GlobalEnvironment())
	if err != nil {
		return nil, err
	}
	return renderAll(found)
}

func renderAll(ours []component) (map[string]string, error) {
	files := map[string]string{}
	for _, c := range ours {
		page, err := renderPage(c)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.kind.singular, c.name, err)
		}
		files[c.page()] = page
	}
	index, err := renderIndex(ours)
	files[indexPage] = index
	return files, err
}

// writeTree writes files under dir, leaving unchanged ones untouched, and
// removes the generated files (those starting with marker) it no longer makes.
// It returns the other files it found and left.
func writeTree(dir string, files map[string]string) (foreign []string, err error) {
	for rel, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if old, err := os.ReadFile(path); err == nil && string(old) == content {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return foreign, err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return foreign, err
		}
	}
	existing, err := listTree(dir)
	if err != nil {
		return foreign, err
	}
	for _, rel := range existing {
		if _, keep := files[rel]; keep {
			continue
		}
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if content, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(content, []byte(marker)) {
			foreign = append(foreign, path)
			continue
		}
		if err := os.Remove(path); err != nil {
			return foreign, err
		}
		// Drop the directory too once empty; failing means it is not.
		_ = os.Remove(filepath.Dir(path))
	}
	return foreign, nil
}

// listTree returns the sorted slash paths of the regular files under dir.
func listTree(dir string) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		paths = append(paths, filepath.ToSlash(rel))
		return err
	})
	sort.Strings(paths)
	return paths, err
}

// compareDirs lists how got differs from want, one line per file.
func compareDirs(want, got string) ([]string, error) {
	wantFiles, err := listTree(want)
	if err != nil {
		return nil, err
	}
	gotFiles, err := listTree(got)
	if err != nil {
		return nil, err
	}
	var drift []string
	inWant := map[string]bool{}
	for _, rel := range wantFiles {
		inWant[rel] = true
		w, err := os.ReadFile(filepath.Join(want, rel))
		if err != nil {
			return nil, err
		}
		switch g, err := os.ReadFile(filepath.Join(got, rel)); {
		case errors.Is(err, fs.ErrNotExist):
			drift = append(drift, "missing: "+rel)
		case err != nil:
			return nil, err
		case !bytes.Equal(w, g):
			drift = append(drift, "differs: "+rel)
		}
	}
	for _, rel := range gotFiles {
		if !inWant[rel] {
			drift = append(drift, "extra:   "+rel)
		}
	}
	return drift, nil
}
