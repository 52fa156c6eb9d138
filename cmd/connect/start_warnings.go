package main

import "github.com/redpanda-data/benthos/v4/public/service"

// logStartWarnings returns the hook that logs, at warn, what the environment
// holds that the pipeline would take otherwise than meant. Connect calls it
// once it has made the config's logger, so the warnings have the format,
// level and file the config gives its logs, and it does so only in the
// commands that run a stream (run, streams, -c; not lint, list, test or
// --version), after loading the env files of -e, which set variables too.
// Before any output writes, it also ends a dead letter file's cut last line
// (endCutLine).
func logStartWarnings(getenv func(string) string) func(*service.Logger) {
	return func(l *service.Logger) {
		for _, w := range brazeOptionWarnings(getenv) {
			l.Warn(w)
		}
		for _, w := range []string{gogcWarning(getenv), deadLetterPathWarning(getenv), endCutLine(getenv), replayPathWarning(getenv)} {
			if w != "" {
				l.Warn(w)
			}
		}
	}
}
