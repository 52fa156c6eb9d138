package e2e

// Reading the PromQL of the alerting rules without Prometheus: the metric
// names an expression selects (bare names too, which the dashboard never
// writes), their label matchers and ranges, and enough syntax checks to
// catch what a hand edit breaks (brackets, function names, durations).

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// promFunctions are PromQL's functions (Prometheus 2.x and 3.x).
var promFunctions = map[string]bool{}

// promAggregations are PromQL's aggregation operators: followed by a
// parenthesis or by by/without.
var promAggregations = map[string]bool{}

// promGroupings take a parenthesised list of label names.
var promGroupings = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promKeywords are the other words that are neither metrics nor functions.
var promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true, "inf": true, "nan": true}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
		clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta
		deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
		histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta increase irate
		label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month
		pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
		sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
		time timestamp vector year`) {
		promFunctions[f] = true
	}
	for _, a := range strings.Fields("sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio") {
		promAggregations[a] = true
	}
}

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
		if m[2] == "=~" || m[2] == "!~" {
			if _, err := regexp.Compile("^(?:" + m[3] + ")$"); err != nil {
				return nil, fmt.Errorf("%s%s%q: %v", m[1], m[2], m[3], err)
			}
		}
		rest = rest[len(m[0]):]
	}
	return out, nil
}

// validRange checks a range, [5m], or a subquery's, [1h:1m] or [1h:].
func validRange(rng string) bool {
	length, step, sub := strings.Cut(rng, ":")
	if _, err := model.ParseDuration(length); err != nil {
		return false
	}
	if sub && step != "" {
		_, err := model.ParseDuration(step)
		return err == nil
	}
	return true
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// wordAt returns the name that starts at expr[i], lower-cased, or "".
func wordAt(expr string, i int) string {
	j := i
	for j < len(expr) && isNameChar(expr[j]) {
		j++
	}
	return strings.ToLower(expr[i:j])
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }

// closing finds the index of the quote or bracket that closes the one at
// expr[i], skipping quoted strings inside brackets; -1 when there is none.
func closing(expr string, i int) int {
	open := expr[i]
	if open == '"' || open == '\'' || open == '`' {
		for j := i + 1; j < len(expr); j++ {
			if expr[j] == '\\' && open != '`' {
				j++
			} else if expr[j] == open {
				return j
			}
		}
		return -1
	}
	end := map[byte]byte{'(': ')', '{': '}', '[': ']'}[open]
	for j := i + 1; j < len(expr); j++ {
		switch c := expr[j]; {
		case c == '"' || c == '\'' || c == '`':
			if j = closing(expr, j); j < 0 {
				return -1
			}
		case c == end:
			return j
		case c == '(' || c == '{' || c == '[':
			if j = closing(expr, j); j < 0 {
				return -1
			}
		case c == ')' || c == '}' || c == ']':
			return -1
		}
	}
	return -1
}

// readPromQL returns the selectors of expr, in order, and what is wrong with
// its syntax: unbalanced brackets or quotes, an unknown function, a bad range,
// a label matcher it cannot read, a selector without a metric name.
func readPromQL(expr string) ([]promSelector, []string) {
	var sels []promSelector
	var problems []string
	skipSpace := func(j int) int {
		for j < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[j])) {
			j++
		}
		return j
	}
	var depth int
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '#': // a comment, to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := closing(expr, i)
			if j < 0 {
				return sels, append(problems, fmt.Sprintf("unterminated string at %q", expr[i:]))
			}
			i = j + 1
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return sels, append(problems, fmt.Sprintf("unbalanced ) at %q", expr[i:]))
			}
			i++
		case c == '[':
			j := closing(expr, i)
			if j < 0 {
				return sels, append(problems, fmt.Sprintf("unclosed [ at %q", expr[i:]))
			}
			if !validRange(expr[i+1 : j]) {
				problems = append(problems, fmt.Sprintf("range [%s] is not a duration", expr[i+1:j]))
			}
			i = j + 1
		case c == ']' || c == '}':
			return sels, append(problems, fmt.Sprintf("unbalanced %c at %q", c, expr[i:]))
		case c == '{':
			problems = append(problems, fmt.Sprintf("a selector without a metric name at %q", expr[i:]))
			if i = closing(expr, i); i < 0 {
				return sels, problems
			}
			i++
		case '0' <= c && c <= '9' || c == '.':
			for i < len(expr) && (isNameChar(expr[i]) || expr[i] == '.') { // 3600, 0.01, 1e3, 0x1f
				i++
			}
		case isNameStart(c):
			j := i
			for j < len(expr) && isNameChar(expr[j]) {
				j++
			}
			word, next := expr[i:j], skipSpace(j)
			followedBy := func(b byte) bool { return next < len(expr) && expr[next] == b }
			switch {
			case promGroupings[strings.ToLower(word)]:
				if followedBy('(') {
					end := closing(expr, next)
					if end < 0 {
						return sels, append(problems, fmt.Sprintf("unclosed label list after %s", word))
					}
					for _, l := range strings.Split(expr[next+1:end], ",") {
						if l = strings.TrimSpace(l); l != "" && !labelNameRE.MatchString(l) {
							problems = append(problems, fmt.Sprintf("%s (%s): %q is not a label name", word, expr[next+1:end], l))
						}
					}
					j = end + 1
				} else if w := strings.ToLower(word); w == "by" || w == "without" || w == "on" || w == "ignoring" {
					problems = append(problems, fmt.Sprintf("%s without a label list", word))
				}
			case promKeywords[strings.ToLower(word)]:
			case promAggregations[word]:
				if !followedBy('(') && !promGroupings[wordAt(expr, next)] {
					problems = append(problems, fmt.Sprintf("aggregation %s without its parenthesis", word))
				}
			case followedBy('('):
				if !promFunctions[word] {
					problems = append(problems, fmt.Sprintf("unknown function %s", word))
				}
			default:
				sel := promSelector{metric: word}
				if followedBy('{') {
					end := closing(expr, next)
					if end < 0 {
						return sels, append(problems, fmt.Sprintf("unclosed { after %s", word))
					}
					sel.matchers, j = expr[next+1:end], end+1
					if _, err := parseMatchers(sel.matchers); err != nil {
						problems = append(problems, fmt.Sprintf("%s: %v", word, err))
					}
				}
				if k := skipSpace(j); k < len(expr) && expr[k] == '[' {
					if end := closing(expr, k); end > 0 {
						sel.rng = expr[k+1 : end]
					}
				}
				sels = append(sels, sel)
			}
			i = j
		default: // operators and commas
			i++
		}
	}
	if depth > 0 {
		problems = append(problems, fmt.Sprintf("%d unclosed (", depth))
	}
	return sels, problems
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
