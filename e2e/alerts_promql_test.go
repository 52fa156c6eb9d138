package e2e

// Reading the selectors of the alerting rules' PromQL, for the scrape check:
// metric names (bare ones too, which the dashboard never writes) and their
// label matchers. promtool checks the syntax (TestAlertRulesPromtoolCheck),
// so this reads only expressions Prometheus accepts.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// promTargetLabels are the labels Prometheus adds to every sample it
// scrapes: no scrape has them, any value may be right.
var promTargetLabels = []string{"job", "instance"}

// promSynthetic are the series Prometheus makes itself for each target, with
// only the target's labels.
var promSynthetic = []string{"up"}

// labelMatcher is one label matcher of a selector: name op "value".
type labelMatcher struct {
	name, op, value string
}

var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)

// parseMatchers reads the matchers between a selector's braces. Values are
// in double quotes, as the rule file writes them.
func parseMatchers(text string) ([]labelMatcher, error) {
	var out []labelMatcher
	for rest := text; strings.TrimSpace(rest) != ""; {
		m := matcherRE.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("cannot read label matcher %q (want name=\"value\", =~, != or !~)", rest)
		}
		out = append(out, labelMatcher{m[1], m[2], m[3]})
		rest = rest[len(m[0]):]
	}
	return out, nil
}

// promToken is a token of PromQL as alertSelectors tells them apart, first
// match first: a quoted string, a range or subquery, a grouping's label
// list, a number or duration, or a name with its {matchers} (group 2) and,
// for a function or an aggregation, what opens its arguments (group 3).
var promToken = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" + `|\[[^\]]*\]|` +
	`(?i:\b(?:by|without|on|ignoring|group_left|group_right))\s*\([^)]*\)|[0-9.][0-9a-zA-Z_.]*|` +
	`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\})?(\s*(?:(?i:by|without)\s*\([^)]*\)\s*)?\()?`)

// promKeywords are the names that are neither metrics nor functions.
var promKeywords = []string{"and", "or", "unless", "bool", "offset", "group_left", "group_right", "atan2", "inf", "nan"}

// alertSelectors returns the selectors of a valid expression, in order: the
// names not followed by a parenthesis (functions and aggregations are) that
// are not keywords.
func alertSelectors(expr string) []promSelector {
	var sels []promSelector
	for _, m := range promToken.FindAllStringSubmatch(expr, -1) {
		if m[1] != "" && m[3] == "" && !slices.Contains(promKeywords, strings.ToLower(m[1])) {
			sels = append(sels, promSelector{metric: m[1], matchers: m[2]})
		}
	}
	return sels
}

// alertSelectorProblem says why an alert's selector would match nothing in
// the scrape, or "" when it matches. Beyond the metric name: each label it
// matches on (but the target's job and instance) must be one the family's
// samples have, and each value it compares with = or != a value some sample
// has (a != to a value no sample has filters nothing: a typo). A regular
// expression's values are not checked, only its label's name.
func alertSelectorProblem(s scrape, sel promSelector) string {
	matchers, err := parseMatchers(sel.matchers)
	if err != nil {
		return fmt.Sprintf("%s: %v", sel.metric, err)
	}
	if slices.Contains(promSynthetic, sel.metric) {
		for _, m := range matchers {
			if !slices.Contains(promTargetLabels, m.name) {
				return fmt.Sprintf("%s has only the target's labels, not %s", sel.metric, m.name)
			}
		}
		return ""
	}
	family, why := s.family(sel.metric)
	if family == nil {
		return why
	}
	var exact []string
	for _, m := range matchers {
		if slices.Contains(promTargetLabels, m.name) || m.name == "le" && strings.HasSuffix(sel.metric, "_bucket") {
			continue
		}
		if !slices.ContainsFunc(family.GetMetric(), func(x *dto.Metric) bool {
			return slices.ContainsFunc(x.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == m.name })
		}) {
			return fmt.Sprintf("%s has no label %s", sel.metric, m.name)
		}
		switch m.op {
		case "=":
			exact = append(exact, fmt.Sprintf("%s=%q", m.name, m.value))
		case "!=":
			if why := s.missing(promSelector{metric: sel.metric, matchers: fmt.Sprintf("%s=%q", m.name, m.value)}); why != "" {
				return fmt.Sprintf("%s{%s!=%q} filters nothing out: %s", sel.metric, m.name, m.value, why)
			}
		}
	}
	return s.missing(promSelector{metric: sel.metric, matchers: strings.Join(exact, ",")})
}

// mergeScrapes puts the samples of several scrapes together, family by
// family: an alert holds if its selectors match in one pipeline or another.
func mergeScrapes(scrapes ...scrape) scrape {
	out := scrape{}
	for _, s := range scrapes {
		for name, f := range s {
			if prev := out[name]; prev != nil {
				f = &dto.MetricFamily{Name: prev.Name, Help: prev.Help, Type: prev.Type,
					Metric: append(slices.Clone(prev.GetMetric()), f.GetMetric()...)}
			}
			out[name] = f
		}
	}
	return out
}
