package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"
)

// refuseMissingInputFile stops a run at start whose file input names, by a
// path rather than a glob, a file that does not exist or a directory, as
// config/dead_letters_to_segment.yaml does with a mistyped or deleted
// DEAD_LETTERS, or the bucket output's file:// directory: benthos' file
// input (v4.60.0) keeps such a path and retries opening a missing one every
// second, for ever, so a replay never ended, and ends the run at once, as
// done, at a directory. A glob that matches nothing ends the run at once
// (replayPathWarning warns of it).
func refuseMissingInputFile(conf *service.ParsedConfig) error {
	file := fileInput(conf)
	if file == nil {
		return nil
	}
	for _, path := range file.Paths {
		if strings.ContainsAny(path, `*?[\`) { // a glob, as the file input tells them
			continue
		}
		info, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("input file %q does not exist, and the file input would retry it every second, for ever: check the path (DEAD_LETTERS in config/dead_letters_to_segment.yaml)", path)
		case err == nil && info.IsDir():
			return fmt.Errorf("input file %q is a directory, which the file input cannot read: name its files, like '%s/*.jsonl' (DEAD_LETTERS in config/dead_letters_to_segment.yaml)",
				path, strings.TrimSuffix(path, "/"))
		}
	}
	return nil
}

// fileInputConf is what of a file input's config the binary reads.
type fileInputConf struct {
	Paths []string `yaml:"paths"`
}

// fileInput is the config's input when it is a file input, else nil (no
// input, another, or one Connect reports the faults of).
func fileInput(conf *service.ParsedConfig) *fileInputConf {
	// Connect keeps a component's config as its YAML.
	raw, err := conf.FieldAny("input")
	node, ok := raw.(*yaml.Node)
	var input struct {
		File *fileInputConf `yaml:"file"`
	}
	if err != nil || !ok || node.Decode(&input) != nil {
		return nil
	}
	return input.File
}
