package e2e

// Prometheus's own promtool reads the rule file as Prometheus will (check
// rules: YAML fields, PromQL, durations, templates) and runs its unit tests
// (test rules docs/prometheus/alerts_test.yaml): each alert fires on the
// series it should, when it should, with its annotations, and stays quiet on
// the others.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/currents-connect/currents-connect/tests/aptinstall"
	"gopkg.in/yaml.v3"
)

const (
	// alertsTestPath holds the rules' unit tests, for promtool test rules.
	alertsTestPath = "docs/prometheus/alerts_test.yaml"
	// promtoolPath is where Debian's prometheus package installs promtool.
	promtoolPath = "/usr/bin/promtool"
)

// promtoolTests is a promtool unit test file, with the fields these checks
// read.
type promtoolTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// runPromtool runs promtool with args in the repository root, installing
// Debian's prometheus package first when promtool is missing (once per
// machine), and fails the test with promtool's output when it fails.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	if err := aptinstall.Install(promtoolPath, t.Logf, "prometheus"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtoolPath, args...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %q: %v\n%s", args, err, out)
	}
}

// TestAlertRulesPromtoolCheck checks the rule file as Prometheus loads it.
func TestAlertRulesPromtoolCheck(t *testing.T) {
	parallelCPU(t)
	runPromtool(t, "check", "rules", alertsPath)
}

// TestAlertRulesPromtoolTest runs the rules' unit tests, after checking that
// they test the shipped file and every alert of it, firing and quiet: promtool
// itself passes an alert no test names, and a test naming no alert of the
// file (a typo) with exp_alerts: [].
func TestAlertRulesPromtoolTest(t *testing.T) {
	parallelCPU(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, alertsTestPath))
	if err != nil {
		t.Fatal(err)
	}
	var f promtoolTests
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", alertsTestPath, err)
	}
	// promtool reads rule_files relative to the test file.
	if want := []string{filepath.Base(alertsPath)}; !slices.Equal(f.RuleFiles, want) || filepath.Dir(alertsPath) != filepath.Dir(alertsTestPath) {
		t.Errorf("%s: rule_files %q, want %q (%s)", alertsTestPath, f.RuleFiles, want, alertsPath)
	}
	firing, quiet, tested := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, test := range f.Tests {
		for _, c := range test.AlertRuleTest {
			tested[c.Alertname] = true
			if len(c.ExpAlerts) > 0 {
				firing[c.Alertname] = true
			} else {
				quiet[c.Alertname] = true
			}
		}
	}
	var names []string
	for _, r := range loadAlertRules(t) {
		names = append(names, r.name)
		if !firing[r.name] {
			t.Errorf("%s: no test expects %s to fire", alertsTestPath, r.name)
		}
		if !quiet[r.name] {
			t.Errorf("%s: no test expects %s to stay quiet (exp_alerts: [])", alertsTestPath, r.name)
		}
	}
	for name := range tested {
		if !slices.Contains(names, name) {
			t.Errorf("%s tests %s, which %s does not have", alertsTestPath, name, alertsPath)
		}
	}
	runPromtool(t, "test", "rules", alertsTestPath)
}
