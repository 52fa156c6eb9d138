package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestAlertRuleChecks checks the rule file's checks on their own (the
// selector reading, the scrape matching, the annotations and anchors), so
// that the shipped file passing them means something.
func TestAlertRuleChecks(t *testing.T) {
	parallelCPU(t)
	sels := alertSelectors(`sum by (job, instance) (increase(a{x!="y", path="p}"}[10m])) > 3 * 3600 and 1e3 < bool b offset 5m
		unless on (job, instance) max without (le) (b) / ignoring (z) group_left (w) c_bucket{le="+Inf"}[1h:5m]
		or absent(up{job="j"}) or label_replace(x:y, "d", "$1", "s", "(.*)") or sum(z) by (job)`)
	want := []promSelector{{"a", `x!="y", path="p}"`, ""}, {"b", "", ""}, {"b", "", ""}, {"c_bucket", `le="+Inf"`, ""},
		{"up", `job="j"`, ""}, {"x:y", "", ""}, {"z", "", ""}}
	if !slices.Equal(sels, want) {
		t.Errorf("selectors %q, want %q", sels, want)
	}
	if _, err := parseMatchers(`x~"y"`); err == nil || !strings.Contains(err.Error(), "cannot read label matcher") {
		t.Errorf(`x~"y": %v, want "cannot read label matcher"`, err)
	}

	s, err := parseScrape(`# TYPE lat_seconds histogram
lat_seconds_bucket{path="p",le="1"} 1
lat_seconds_bucket{path="p",le="+Inf"} 2
lat_seconds_sum{path="p"} 0.3
lat_seconds_count{path="p"} 2
# TYPE saves counter
saves{result="ok",path="p"} 4
# TYPE lag gauge
lag 10
`)
	if err != nil {
		t.Fatal(err)
	}
	other, err := parseScrape("# TYPE saves counter\nsaves{result=\"error\",path=\"q\"} 1\n# TYPE only_http counter\nonly_http 1\n")
	if err != nil {
		t.Fatal(err)
	}
	s = mergeScrapes(s, other)
	for _, c := range []struct {
		sel  promSelector
		want string // "" when it matches
	}{
		{promSelector{metric: "saves", matchers: `result="ok",job="any",instance="any"`}, ""},
		{promSelector{metric: "saves", matchers: `result="error",path="q"`}, ""},
		{promSelector{metric: "saves", matchers: `result!="ok"`}, ""},
		{promSelector{metric: "saves", matchers: `result=~"fail.*"`}, ""},
		{promSelector{metric: "only_http"}, ""},
		{promSelector{metric: "lat_seconds_bucket", matchers: `le="+Inf",path="p"`}, ""},
		{promSelector{metric: "up", matchers: `job="currents-connect"`}, ""},
		{promSelector{metric: "saves_total"}, "saves_total is not in the scrape"},
		{promSelector{metric: "saves", matchers: `result="error",path="p"`}, `no sample with path="p",result="error"`},
		{promSelector{metric: "saves", matchers: `result!="success"`}, `filters nothing out`},
		{promSelector{metric: "saves", matchers: `reslt=~"ok"`}, "no label reslt"},
		{promSelector{metric: "lag", matchers: `path="p"`}, "no label path"},
		{promSelector{metric: "lat_seconds"}, "is a histogram"},
		{promSelector{metric: "up", matchers: `path="p"`}, "only the target's labels"},
	} {
		got := alertSelectorProblem(s, c.sel)
		if (got == "") != (c.want == "") || !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q", c.sel, got, c.want)
		}
	}

	doc := "# Alerts\n\n## Checkpoint lag (stat, per instance)\n\n```sh\n# not a heading\n```\n### `x_y` z\n## Page\n## Page\n####### seven\n"
	if got := markdownAnchors(doc); !slices.Equal(got, []string{"alerts", "checkpoint-lag-stat-per-instance", "x_y-z", "page", "page-1"}) {
		t.Errorf("anchors %q", got)
	}
	docs := map[string]string{"docs/alerts.md": doc}
	good := promRule{Alert: "A", Expr: "lag > 1", For: "5m", Labels: map[string]string{"severity": "page"},
		Annotations: map[string]string{"summary": "{{ $labels.instance }} lags {{ $value | humanizeDuration }}", "description": "d",
			"runbook_url": runbookBase + "docs/alerts.md#page-1"}}
	if p := checkAlertRule(good, docs); len(p) != 0 {
		t.Errorf("a good rule: %q", p)
	}
	for want, breakIt := range map[string]func(r *promRule){
		"has no for":                    func(r *promRule) { r.For = "" },
		`severity "critical"`:           func(r *promRule) { r.Labels = map[string]string{"severity": "critical"} },
		"has no summary annotation":     func(r *promRule) { delete(r.Annotations, "summary") },
		"has no description annotation": func(r *promRule) { r.Annotations["description"] = " " },
		"has no runbook_url annotation": func(r *promRule) { delete(r.Annotations, "runbook_url") },
		"has no heading with the anchor #page-2": func(r *promRule) {
			r.Annotations["runbook_url"] = runbookBase + "docs/alerts.md#page-2"
		},
		"no document docs/alert.md": func(r *promRule) { r.Annotations["runbook_url"] = runbookBase + "docs/alert.md#page" },
		"names no section":          func(r *promRule) { r.Annotations["runbook_url"] = runbookBase + "docs/alerts.md" },
		"is not under":              func(r *promRule) { r.Annotations["runbook_url"] = "https://example.com/docs/alerts.md#page" },
	} {
		r := good
		r.Labels, r.Annotations = map[string]string{}, map[string]string{}
		for k, v := range good.Labels {
			r.Labels[k] = v
		}
		for k, v := range good.Annotations {
			r.Annotations[k] = v
		}
		breakIt(&r)
		if p := checkAlertRule(r, docs); !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("want a problem with %q, got %q", want, p)
		}
	}
}
