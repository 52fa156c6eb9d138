package e2e

// The Prometheus alerting rules (docs/prometheus/alerts.yaml) are checked as
// the dashboard is: every metric and label value a rule selects must be in a
// /metrics scrape of the shipped pipelines, and each rule must carry what an
// on-call needs (severity, summary, description, a runbook that exists).
// promtool checks their syntax and runs their unit tests
// (alerts_promtool_test.go).

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

const (
	alertsPath = "docs/prometheus/alerts.yaml"
	// runbookBase is where the rules' runbook_url point: a file of this
	// repository, at a heading's anchor.
	runbookBase = "https://github.com/currents-connect/currents-connect/blob/main/"
)

// alertSeverities are the severities the rules use: page wakes someone up,
// ticket waits for working hours.
var alertSeverities = []string{"page", "ticket"}

// ruleFile is a Prometheus rule file, with the fields these checks read
// (promtool rejects fields Prometheus does not know).
type ruleFile struct {
	Groups []struct {
		Name  string     `yaml:"name"`
		Rules []promRule `yaml:"rules"`
	} `yaml:"groups"`
}

type promRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRule is a rule that passed the checks, with its expression's selectors.
type alertRule struct {
	name      string
	selectors []promSelector
}

// checkAlertRules checks a rule file as an on-call reads it, and returns its
// alerts. docs maps a repository path to its text, for the
// runbooks' anchors.
func checkAlertRules(t *testing.T, data []byte, docs map[string]string) []alertRule {
	t.Helper()
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	var rules []alertRule
	names := map[string]bool{}
	for _, g := range f.Groups {
		for i, r := range g.Rules {
			where := fmt.Sprintf("alert %s", r.Alert)
			if r.Alert == "" {
				where = fmt.Sprintf("rule %d of group %s", i, g.Name)
				t.Errorf("%s has no alert name (this file holds alerts, not recording rules)", where)
				continue
			}
			if names[r.Alert] {
				t.Errorf("%s: the name is used twice", where)
			}
			names[r.Alert] = true
			for _, p := range checkAlertRule(r, docs) {
				t.Errorf("%s: %s", where, p)
			}
			sels := alertSelectors(r.Expr)
			if len(sels) == 0 {
				t.Errorf("%s selects no metric: %s", where, r.Expr)
			}
			rules = append(rules, alertRule{r.Alert, sels})
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no alerts", alertsPath)
	}
	return rules
}

// checkAlertRule lists what an alerting rule lacks for an on-call (promtool
// checks the rest).
func checkAlertRule(r promRule, docs map[string]string) []string {
	var problems []string
	if strings.TrimSpace(r.Expr) == "" {
		problems = append(problems, "has no expr")
	}
	if r.For == "" {
		problems = append(problems, "has no for (write for: 0m to fire at once)")
	}
	if !slices.Contains(alertSeverities, r.Labels["severity"]) {
		problems = append(problems, fmt.Sprintf("severity %q, want one of %q", r.Labels["severity"], alertSeverities))
	}
	for _, a := range []string{"summary", "description", "runbook_url"} {
		text := strings.TrimSpace(r.Annotations[a])
		if text == "" {
			problems = append(problems, "has no "+a+" annotation")
		}
	}
	if u := r.Annotations["runbook_url"]; u != "" {
		if why := runbookProblem(u, docs); why != "" {
			problems = append(problems, "runbook_url "+why)
		}
	}
	return problems
}

// runbookProblem says why a runbook_url does not lead to a heading of the
// repository's docs, or "".
func runbookProblem(url string, docs map[string]string) string {
	rest, ok := strings.CutPrefix(url, runbookBase)
	if !ok {
		return fmt.Sprintf("%s is not under %s", url, runbookBase)
	}
	path, anchor, _ := strings.Cut(rest, "#")
	text, ok := docs[path]
	if !ok {
		return fmt.Sprintf("%s: no document %s", url, path)
	}
	if anchor == "" {
		return fmt.Sprintf("%s names no section (#anchor) of %s", url, path)
	}
	if !slices.Contains(markdownAnchors(text), anchor) {
		return fmt.Sprintf("%s: %s has no heading with the anchor #%s", url, path, anchor)
	}
	return ""
}

// markdownAnchors lists the anchors GitHub gives a document's headings:
// lower case, spaces as hyphens, punctuation but - and _ dropped, and -1, -2
// after a repeated one. Lines in code fences are not headings.
func markdownAnchors(text string) []string {
	var anchors []string
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !ok || !strings.HasPrefix(line, "#") || len(line)-len(strings.TrimLeft(line, "#")) > 6 {
			continue
		}
		var slug strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteRune('-')
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			a = fmt.Sprintf("%s-%d", a, n)
		}
		seen[slug.String()]++
		anchors = append(anchors, a)
	}
	return anchors
}

// loadAlertRules reads the shipped rule file and checks it (checkAlertRules).
func loadAlertRules(t *testing.T) []alertRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, alertsPath))
	if err != nil {
		t.Fatal(err)
	}
	return checkAlertRules(t, data, userDocs(t))
}

// TestAlertRules checks the rule file on its own: each rule's severity,
// annotations and runbook; and that every alert the runbook page describes
// is a rule.
func TestAlertRules(t *testing.T) {
	parallelCPU(t)
	rules := loadAlertRules(t)
	var names []string
	for _, r := range rules {
		names = append(names, r.name)
	}
	docs := userDocs(t)
	page := docs["docs/alerts.md"]
	for _, a := range markdownAnchors(page) {
		if strings.HasPrefix(a, "currentsconnect") && !slices.ContainsFunc(names, func(n string) bool { return strings.ToLower(n) == a }) {
			t.Errorf("docs/alerts.md describes the alert #%s, which %s does not have", a, alertsPath)
		}
	}
	t.Logf("%d alerts", len(rules))
}

// TestAlertsShownOnDashboard checks what the runbook page promises: the
// dashboard shows what each alert saw. Every metric an alert selects (but
// Prometheus's own up) is queried by a panel, with each label value the
// alert matches with = (a path): an on-call paged for a dead letter file
// that cannot be written, or for shards nobody runs, found no panel of it.
func TestAlertsShownOnDashboard(t *testing.T) {
	parallelCPU(t)
	rules := loadAlertRules(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	var shown []labelledSelector
	for _, q := range loadDashboard(t, data) {
		if q.panel {
			for _, sel := range metricSelectors(q.expr) {
				shown = append(shown, exactSelector(t, sel))
			}
		}
	}
	for _, r := range rules {
		for _, sel := range r.selectors {
			if slices.Contains(promSynthetic, sel.metric) {
				continue
			}
			want := exactSelector(t, sel)
			if !slices.ContainsFunc(shown, want.within) {
				t.Errorf("alert %s selects %s{%s}, which no panel of %s shows", r.name, sel.metric, sel.matchers, dashboardPath)
			}
		}
	}
}

// labelledSelector is a metric with the labels a selector matches with =,
// but the target's.
type labelledSelector struct {
	metric string
	exact  []labelMatcher
}

func exactSelector(t *testing.T, sel promSelector) labelledSelector {
	t.Helper()
	matchers, err := parseMatchers(sel.matchers)
	if err != nil {
		t.Fatalf("%s: %v", sel.metric, err)
	}
	out := labelledSelector{metric: sel.metric}
	for _, m := range matchers {
		if m.op == "=" && !slices.Contains(promTargetLabels, m.name) {
			out.exact = append(out.exact, m)
		}
	}
	return out
}

// within says whether o selects the series of s: the same metric, with no =
// matcher s has not (a panel by result shows the alert's result="ok").
func (s labelledSelector) within(o labelledSelector) bool {
	return o.metric == s.metric && !slices.ContainsFunc(o.exact, func(m labelMatcher) bool { return !slices.Contains(s.exact, m) })
}

// mdLink is the target of a Markdown link.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestAlertRulesMatchScrape checks every selector of every alert against
// real scrapes: the bucket pipeline through the dashboard's paths
// (dashboardScenarioScrape), the notifications pipeline
// (dashboardNotificationsScrape), and the Custom HTTP pipeline answering
// Braze 200 and 503 (its write key refused, then taken again).
func TestAlertRulesMatchScrape(t *testing.T) {
	parallelCPU(t)
	rules := loadAlertRules(t)
	if t.Failed() {
		t.FailNow()
	}
	notifications, customHTTP := notificationsScrape.get(t), customHTTPScenarioScrape(t)
	all := mergeScrapes(bucketScrape.get(t), notifications, customHTTP)
	// An alert on one pipeline's own metrics holds in that pipeline's scrape.
	own := map[string]scrape{"CurrentsConnectNotifications": notifications, "CurrentsConnectHTTP": customHTTP}
	checked := map[string]bool{}
	for _, r := range rules {
		s := all
		for prefix, pipeline := range own {
			if strings.HasPrefix(r.name, prefix) {
				s = pipeline
			}
		}
		for _, sel := range r.selectors {
			if why := alertSelectorProblem(s, sel); why != "" {
				t.Errorf("alert %s: %s", r.name, why)
			}
			checked[sel.metric] = true
		}
	}
	t.Logf("%d alerts, %d metric names checked against the scrapes", len(rules), len(checked))
}

// customHTTPScenarioScrape runs the Custom HTTP pipeline through a request
// delivered and one refused with 503 while Segment refuses the write key,
// and returns its /metrics once the held events are delivered.
func customHTTPScenarioScrape(t *testing.T) scrape {
	t.Helper()
	p := startHTTPPipeline(t, "braze-token", "2s")
	first := namedEvents(t, "users.messages.email.Send", 3, 11)
	if code := p.postBytes("Bearer braze-token", customHTTPBody(t, "users.messages.email.Send", first)); code != http.StatusOK {
		t.Fatalf("a request with Segment up: status %d, want 200", code)
	}
	held := namedEvents(t, "users.messages.pushnotification.Send", 3, 12)
	p.srv.RevokeKey(true)
	if code := p.postBytes("Bearer braze-token", customHTTPBody(t, "users.messages.pushnotification.Send", held)); code != http.StatusServiceUnavailable {
		t.Fatalf("a request with the key refused: status %d, want 503", code)
	}
	p.srv.RevokeKey(false)
	waitFor(t, p.proc.events, time.Minute, "the held events delivered", func() (bool, error) {
		return !slices.ContainsFunc(held, func(r map[string]any) bool { return p.srv.Count(r["id"].(string)) == 0 }), nil
	})
	p.checkDelivered(first)
	s := scrapeMetrics(t, p.metrics)
	if s.sum("braze_currents_http_requests", `status="503"`) != 1 || s.sum("segment_requests", `status="401"`) < 1 {
		t.Fatalf("braze_currents_http_requests{status=\"503\"} %v, segment_requests{status=\"401\"} %v; want 1 and at least 1",
			s.sum("braze_currents_http_requests", `status="503"`), s.sum("segment_requests", `status="401"`))
	}
	return s
}
