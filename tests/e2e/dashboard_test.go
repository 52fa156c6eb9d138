package e2e

// The Grafana dashboard (docs/grafana/currents-connect.json) is checked
// against the metrics the real binary exports: every metric a panel queries
// must be in a /metrics scrape of the shipped pipeline, so the dashboard
// cannot drift from the code.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

const dashboardPath = "docs/grafana/currents-connect.json"

// gPanel is the part of a Grafana panel the checks read. Rows hold their
// panels when collapsed.
type gPanel struct {
	ID         *int      `json:"id"`
	Type       string    `json:"type"`
	Title      string    `json:"title"`
	Datasource *gDatasrc `json:"datasource"`
	Targets    []gTarget `json:"targets"`
	Panels     []gPanel  `json:"panels"`
	GridPos    *gGridPos `json:"gridPos"`
}

type gGridPos struct{ H, W, X, Y int }

type gDatasrc struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gTarget struct {
	RefID      string    `json:"refId"`
	Expr       string    `json:"expr"`
	Datasource *gDatasrc `json:"datasource"`
}

type gVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *gDatasrc       `json:"datasource"`
}

type gDashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int      `json:"schemaVersion"`
	Title         string   `json:"title"`
	UID           string   `json:"uid"`
	Panels        []gPanel `json:"panels"`
	Templating    struct {
		List []gVariable `json:"list"`
	} `json:"templating"`
}

// dashQuery is one PromQL expression of the dashboard and where it is.
type dashQuery struct {
	where string // `timeseries panel 14 "Segment retries per second" target A`
	expr  string
	panel bool // a panel's target, not a variable's query
}

// loadDashboard parses the dashboard and checks its shape: what Grafana needs
// to import it and what makes every panel show something. It returns every
// PromQL expression, panel targets and variable queries alike.
func loadDashboard(t *testing.T, data []byte) []dashQuery {
	t.Helper()
	if !json.Valid(data) {
		var v any
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, json.Unmarshal(data, &v))
	}
	var d gDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion >= 36", d.Title, d.UID, d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v: want one Prometheus data source input named DS_PROMETHEUS", d.Inputs)
	}
	checkDS := func(where string, ds *gDatasrc) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != "${DS_PROMETHEUS}" {
			t.Errorf("%s: data source %+v, want prometheus ${DS_PROMETHEUS}", where, ds)
		}
	}

	var queries []dashQuery
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		checkDS("variable "+v.Name, v.Datasource)
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("variable %s: query is neither a string nor an object: %s", v.Name, v.Query)
			}
		}
		expr, ok := variableQueryExpr(q.Query)
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(selector, label) or query_result(expr)", v.Name, q.Query)
			continue
		}
		queries = append(queries, dashQuery{"variable " + v.Name, expr, false})
	}
	for _, name := range []string{"DS_PROMETHEUS", "job", "instance"} {
		if !vars[name] {
			t.Errorf("no %s variable in templating", name)
		}
	}

	ids := map[int]string{}
	var walk func(ps []gPanel)
	walk = func(ps []gPanel) {
		for _, p := range ps {
			where := fmt.Sprintf("%s panel %q", p.Type, p.Title)
			if p.ID == nil {
				t.Errorf("%s has no id", where)
			} else {
				where = fmt.Sprintf("%s panel %d %q", p.Type, *p.ID, p.Title)
				if other, dup := ids[*p.ID]; dup {
					t.Errorf("%s reuses the id of %s", where, other)
				}
				ids[*p.ID] = where
			}
			if strings.TrimSpace(p.Title) == "" {
				t.Errorf("%s has no title", where)
			}
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v is not a place on the 24-column grid", where, p.GridPos)
			}
			if p.Type == "row" {
				// A row is a heading: its own panels carry the queries.
				if len(p.Targets) != 0 {
					t.Errorf("%s: a row has no queries", where)
				}
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no target", where)
			}
			checkDS(where, p.Datasource)
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				tw := fmt.Sprintf("%s target %s", where, tg.RefID)
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId missing or repeated", tw)
				}
				refs[tg.RefID] = true
				checkDS(tw, tg.Datasource)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s has no expr", tw)
					continue
				}
				queries = append(queries, dashQuery{tw, tg.Expr, true})
			}
		}
	}
	walk(d.Panels)
	if len(ids) == 0 {
		t.Fatalf("%s has no panels", dashboardPath)
	}
	return queries
}

var grafanaLabelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
var grafanaQueryResultRE = regexp.MustCompile(`^\s*query_result\(\s*(.*)\s*\)\s*$`)

// variableQueryExpr returns the PromQL inside a Grafana Prometheus variable
// query: the selector of label_values(selector, label), the expression of
// query_result(expr).
func variableQueryExpr(q string) (string, bool) {
	if m := grafanaLabelValuesRE.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	if m := grafanaQueryResultRE.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	return "", false
}

// promSelector is a metric name as a PromQL expression uses it, with the text of
// its label matchers (without the braces).
type promSelector struct {
	metric   string
	matchers string
	ranges   []string // the [range] of each range selector
}

// promqlKeywords are the identifiers of PromQL that are neither metric nor
// function names: operators, modifiers and the grouping clauses.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// promGroupingKeywords are followed by a parenthesised list of label names.
var promGroupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

// promAggregations may take their grouping clause before their arguments:
// sum by (le) (…).
var promAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true,
	"stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true}

// metricSelectors lists the metric names an expression selects, in order,
// with their label matchers. Function and aggregation names (an identifier
// followed by "("), keywords, grouping label lists, label matchers, strings,
// numbers, durations, ranges and Grafana variables ($x, ${x}) are not metric
// names; {__name__="x"} is. Names are kept as written: a histogram's
// x_bucket, x_sum and x_count are resolved against the scrape, where the
// family is x.
func metricSelectors(expr string) ([]promSelector, error) {
	var out []promSelector
	depth := 0
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n' || expr[i] == '\r') {
			i++
		}
		return i
	}
	// closing returns the index just after the bracket closing the one at
	// i, skipping quoted strings.
	closing := func(i int) (int, error) {
		open, shut := expr[i], map[byte]byte{'(': ')', '{': '}', '[': ']'}[expr[i]]
		n := 0
		for j := i; j < len(expr); j++ {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				end, err := skipPromString(expr, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case c == open:
				n++
			case c == shut:
				if n--; n == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %q at offset %d", open, i)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipPromString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			// A Grafana variable: $name or ${name} or ${name:format}.
			i++
			if i < len(expr) && expr[i] == '{' {
				end := strings.IndexByte(expr[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unclosed ${ at offset %d", i-1)
				}
				i += end + 1
			} else {
				for i < len(expr) && isIdent(expr[i]) {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number or a duration: 0.95, 1e3, 0x1f, 5m, 1h30m.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case c == '{':
			// A selector with no name before its braces: {__name__="x", …}.
			end, err := closing(i)
			if err != nil {
				return nil, err
			}
			matchers := expr[i+1 : end-1]
			name := promNameMatcher(matchers)
			if name == "" {
				return nil, fmt.Errorf("selector {%s} at offset %d has no metric name", matchers, i)
			}
			sel := promSelector{metric: name, matchers: matchers}
			i = end
			i = promRangeAfter(expr, i, skipSpace, closing, &sel)
			out = append(out, sel)
		case c == '[':
			return nil, fmt.Errorf("range at offset %d follows no selector", i)
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced ) at offset %d", i)
			}
			i++
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			followedBy := func(b byte) bool { return next < len(expr) && expr[next] == b }
			switch {
			case promGroupingKeywords[word]:
				if followedBy('(') {
					end, err := closing(next)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[strings.ToLower(word)]:
			case followedBy('('):
				// A function or aggregation: its arguments are scanned on.
			case promAggregations[word] && (strings.HasPrefix(expr[next:], "by") || strings.HasPrefix(expr[next:], "without")):
				// An aggregation with its grouping first: the clause is skipped next.
			default:
				sel := promSelector{metric: word}
				if followedBy('{') {
					end, err := closing(next)
					if err != nil {
						return nil, err
					}
					sel.matchers = expr[next+1 : end-1]
					if name := promNameMatcher(sel.matchers); name != "" {
						return nil, fmt.Errorf("%s{__name__=%q}: two metric names", word, name)
					}
					i = end
				}
				i = promRangeAfter(expr, i, skipSpace, closing, &sel)
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	return out, nil
}

// promRangeAfter consumes a [range] right after a selector ending at i.
func promRangeAfter(expr string, i int, skipSpace func(int) int, closing func(int) (int, error), sel *promSelector) int {
	next := skipSpace(i)
	if next < len(expr) && expr[next] == '[' {
		if end, err := closing(next); err == nil {
			sel.ranges = append(sel.ranges, strings.TrimSpace(expr[next+1:end-1]))
			return end
		}
	}
	return i
}

func skipPromString(expr string, i int) (int, error) {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		if expr[j] == '\\' && q != '`' {
			j++
			continue
		}
		if expr[j] == q {
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at offset %d", i)
}

var promNameMatcherRE = regexp.MustCompile(`(?:^|,)\s*__name__\s*=\s*"([^"]+)"`)

func promNameMatcher(matchers string) string {
	if m := promNameMatcherRE.FindStringSubmatch(matchers); m != nil {
		return m[1]
	}
	return ""
}

// promScrape is a parsed Prometheus text exposition: each family's type and the
// label sets of its samples, by sample name.
type promScrape struct {
	types   map[string]string              // family name -> counter, gauge, histogram, summary, untyped
	samples map[string][]map[string]string // sample name (x, x_bucket, …) -> label sets
	values  map[string]float64             // sample name -> sum of its values
}

func parsePromScrape(text string) (*promScrape, error) {
	s := &promScrape{types: map[string]string{}, samples: map[string][]map[string]string{}, values: map[string]float64{}}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
				s.types[f[2]] = f[3]
			}
			continue
		}
		name, labels, rest, err := parsePromSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %v", n+1, line, err)
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %v", n+1, line, err)
		}
		s.samples[name] = append(s.samples[name], labels)
		s.values[name] += v
	}
	return s, nil
}

// parsePromSample splits `name{a="x",b="y"} 1` into its name, labels and the rest.
func parsePromSample(line string) (string, map[string]string, string, error) {
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return "", nil, "", fmt.Errorf("no sample name")
	}
	name, labels, i := line[:end], map[string]string{}, end
	if line[i] == '{' {
		i++
		for {
			for i < len(line) && (line[i] == ' ' || line[i] == ',') {
				i++
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			eq := strings.IndexByte(line[i:], '=')
			if eq < 0 || i+eq+1 >= len(line) || line[i+eq+1] != '"' {
				return "", nil, "", fmt.Errorf("bad label at offset %d", i)
			}
			key := line[i : i+eq]
			var val strings.Builder
			j := i + eq + 2
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[j])
					}
					continue
				}
				val.WriteByte(line[j])
			}
			if j >= len(line) {
				return "", nil, "", fmt.Errorf("unclosed label value")
			}
			labels[key] = val.String()
			i = j + 1
		}
	}
	if strings.TrimSpace(line[i:]) == "" {
		return "", nil, "", fmt.Errorf("no value")
	}
	return name, labels, line[i:], nil
}

// sum is the sum of every sample of a counter or gauge, over all label sets.
func (s *promScrape) sum(name string) float64 { return s.values[name] }

// missing says why a selector of the dashboard matches nothing in the
// scrape, or "" when it matches. Histograms are exposed as x_bucket, x_sum
// and x_count of family x: those names are looked up under x, and x itself
// is not a series. Label matchers of the form label="value" (no variable)
// must match a sample too: a panel filtering on a path that the config no
// longer has would be as empty as one with a wrong name.
func (s *promScrape) missing(sel promSelector) string {
	name := sel.metric
	if typ := s.types[name]; typ == "histogram" || typ == "summary" && len(s.samples[name]) == 0 {
		return fmt.Sprintf("%s is a %s: query %s_bucket, %s_sum or %s_count", name, typ, name, name, name)
	}
	family := name
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch typ := s.types[base]; {
		case typ == "histogram", typ == "summary" && suffix != "_bucket":
			family = base
		case s.types[name] == "" && typ != "":
			return fmt.Sprintf("%s is not a series: %s is a %s, not a histogram", name, base, typ)
		}
	}
	if s.types[family] == "" && len(s.samples[name]) == 0 {
		return fmt.Sprintf("%s is not in the scrape", name)
	}
	if len(s.samples[name]) == 0 {
		return fmt.Sprintf("%s (family %s, %s) has no samples in the scrape", name, family, s.types[family])
	}
	exact := promExactMatchers(sel.matchers)
	matches := func(labels map[string]string) bool {
		for _, m := range exact {
			if labels[m[0]] != m[1] {
				return false
			}
		}
		return true
	}
	if !slices.ContainsFunc(s.samples[name], matches) {
		var want []string
		for _, m := range exact {
			want = append(want, fmt.Sprintf("%s=%q", m[0], m[1]))
		}
		return fmt.Sprintf("%s has no sample with %s", name, strings.Join(want, ","))
	}
	return ""
}

var promExactMatcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"$]*)"`)

// promExactMatchers returns the label="value" matchers without variables (not
// =~, !=, !~).
func promExactMatchers(matchers string) [][2]string {
	var out [][2]string
	for _, m := range promExactMatcherRE.FindAllStringSubmatchIndex(matchers, -1) {
		if before := strings.TrimRight(matchers[:m[2]], " "); before != "" && !strings.HasSuffix(before, ",") {
			continue
		}
		key, val := matchers[m[2]:m[3]], matchers[m[4]:m[5]]
		if key == "__name__" {
			continue
		}
		out = append(out, [2]string{key, val})
	}
	return out
}

// checkSelectorConventions checks what makes the variables and Grafana's
// step work in a panel: each selector filters on $job and $instance, and
// each range is $__rate_interval (or $__range for totals over the
// dashboard's range).
func checkSelectorConventions(sel promSelector) []string {
	var problems []string
	if !strings.Contains(sel.matchers, `job=~"$job"`) {
		problems = append(problems, fmt.Sprintf(`%s does not filter on job=~"$job"`, sel.metric))
	}
	if !strings.Contains(sel.matchers, `instance=~"$instance"`) {
		problems = append(problems, fmt.Sprintf(`%s does not filter on instance=~"$instance"`, sel.metric))
	}
	for _, r := range sel.ranges {
		if r != "$__rate_interval" && r != "$__range" {
			problems = append(problems, fmt.Sprintf("%s[%s]: use [$__rate_interval] (or [$__range] for a total)", sel.metric, r))
		}
	}
	return problems
}

// TestDashboardMetricNames checks the PromQL reading on its own, so that a
// scrape check passing means something.
func TestDashboardMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum by (event_type) (rate(braze_currents_events_read{job=~"$job",instance=~"$instance"}[$__rate_interval]))`,
			[]string{"braze_currents_events_read"}},
		{`histogram_quantile(0.95, sum by (le) (rate(segment_request_latency_seconds_bucket{job=~"$job"}[$__rate_interval])))`,
			[]string{"segment_request_latency_seconds_bucket"}},
		{`clamp_min(sum(rate(a{x="by (b)"}[5m])) - (sum(rate(b[1h30m])) or vector(0)), 0)`, []string{"a", "b"}},
		{`sum(rate(x_total[${__rate_interval}])) by (instance) / on(instance) group_left(job) up offset 5m`,
			[]string{"x_total", "up"}},
		{`{__name__="process_cpu_seconds_total",job=~"$job"} * 1e3 > bool 0.5`, []string{"process_cpu_seconds_total"}},
		{`sum without (path, label) (increase(output_sent{path="root.output.fallback.0"}[$__range])) unless nan`, []string{"output_sent"}},
	} {
		sels, err := metricSelectors(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			got = append(got, s.metric)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: metrics %q, want %q", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`sum(rate(x[5m])`, `rate(x{a="b"[5m])`, `x{a="b}`} {
		if _, err := metricSelectors(bad); err == nil {
			t.Errorf("%s: no error for a broken expression", bad)
		}
	}
	if q, ok := variableQueryExpr(`label_values(input_received{path="root.input",job=~"$job"}, instance)`); !ok || q != `input_received{path="root.input",job=~"$job"}` {
		t.Errorf("label_values query read as %q, %v", q, ok)
	}

	s, err := parsePromScrape(`# TYPE lat_seconds histogram
lat_seconds_bucket{path="p",le="0.1"} 1
lat_seconds_bucket{path="p",le="+Inf"} 2
lat_seconds_sum{path="p"} 0.3
lat_seconds_count{path="p"} 2
# TYPE sent counter
sent{path="root.output.fallback.0",note="a \"quoted\", value"} 4
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sel  promSelector
		ok   bool
		want string
	}{
		{promSelector{metric: "lat_seconds_bucket"}, true, ""},
		{promSelector{metric: "lat_seconds_count", matchers: `path="p"`}, true, ""},
		{promSelector{metric: "lat_seconds"}, false, "is a histogram"},
		{promSelector{metric: "sent_count"}, false, "not a histogram"},
		{promSelector{metric: "sent", matchers: `job=~"$job",path="root.output.fallback.0"`}, true, ""},
		{promSelector{metric: "sent", matchers: `path="root.output.fallback.9"`}, false, `path="root.output.fallback.9"`},
		{promSelector{metric: "sent", matchers: `path!="x",path=~"y"`}, true, ""},
		{promSelector{metric: "sent", matchers: `path="root.output.fallback.0",note="b"`}, false, `note="b"`},
		{promSelector{metric: "gone"}, false, "not in the scrape"},
	} {
		got := s.missing(c.sel)
		if (got == "") != c.ok || !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want ok=%v %q", c.sel, got, c.ok, c.want)
		}
	}
	if s.sum("sent") != 4 {
		t.Errorf("sum(sent) = %v", s.sum("sent"))
	}
}

// TestDashboardMatchesScrape runs the shipped pipeline through every path a
// panel shows (events sent, filtered out and unmappable, a Segment 500 and
// its retry, a corrupt and an unreadable object, checkpoint saves) and checks
// every metric of every panel against its /metrics.
func TestDashboardMatchesScrape(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	queries := loadDashboard(t, data)
	type use struct {
		where string
		sel   promSelector
	}
	var uses []use
	for _, q := range queries {
		sels, err := metricSelectors(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %s", q.where, err, q.expr)
			continue
		}
		if len(sels) == 0 {
			t.Errorf("%s queries no metric: %s", q.where, q.expr)
		}
		for _, s := range sels {
			if q.panel {
				for _, p := range checkSelectorConventions(s) {
					t.Errorf("%s: %s", q.where, p)
				}
			}
			uses = append(uses, use{q.where, s})
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The bucket: two forwarded types; a type outside Braze's 50, read
	// because BRAZE_EVENT_TYPES names it, which the mapping filters out;
	// events without any user, which cannot be mapped (dead letters); an
	// object that is not Avro (corrupt) and one that cannot be opened (a
	// symlink to itself: failed, read_attempts=1 to fail at once).
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, err := fixtures.WriteTree(bucket, fixtures.TreeOptions{FilesPerType: 1, RecordsPerFile: 10, Seed: 91,
		EventTypes: []string{"users.messages.email.Send", "users.messages.sms.Delivery", "users.behaviors.CustomEvent"}})
	if err != nil {
		t.Fatal(err)
	}
	sendableIDs, filtered := 0, 0
	for _, w := range written {
		if _, ok := fixtures.SegmentEvents()[w.Spec.EventType]; ok {
			sendableIDs += len(w.Records)
		} else {
			filtered += len(w.Records)
		}
	}
	var noUser []fixtures.Field
	for _, f := range fixtures.Fields("users.messages.email.Open") {
		if f.Name != "user_id" && f.Name != "external_user_id" {
			noUser = append(noUser, f)
		}
	}
	unmappable := writeSpec(t, bucket, fixtures.FileSpec{EventType: "users.messages.email.Open", Fields: noUser, Records: 4,
		Seed: 92, IntegrationID: written[0].Spec.IntegrationID})
	badKey := func(et string, offset int) string {
		p := filepath.Join(bucket, filepath.FromSlash(fixtures.Key(fixtures.FileSpec{EventType: et,
			IntegrationID: written[0].Spec.IntegrationID, Offset: offset})))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(badKey("users.messages.sms.Delivery", 900), []byte("PK\x03\x04 a zip file, not Avro"), 0o644); err != nil {
		t.Fatal(err)
	}
	loop := badKey("users.messages.email.Send", 900)
	if err := os.Symlink(filepath.Base(loop), loop); err != nil {
		t.Fatal(err)
	}

	srv := segmentapi.StartT(t, e2eWriteKey)
	srv.FailNext(1, http.StatusInternalServerError) // one retry
	admin, p := startWatchingPipeline(t, "file://"+bucket, srv, dir, "--set", "input.braze_currents.read_attempts=1")
	waitUntil(t, "every sendable event in Segment", func() bool { return srv.UniqueMessageIDs() == sendableIDs })
	var s *promScrape
	var scrapeErr error
	defer func() {
		if t.Failed() {
			t.Logf("connect logs:\n%s", lastLines(p.logs(), 30))
			if s != nil {
				for _, m := range []string{"braze_currents_objects_done", "braze_currents_objects_corrupt", "braze_currents_objects_failed",
					"currents_dead_letters", "braze_currents_checkpoint_saves"} {
					t.Logf("last scrape: %s %v", m, s.sum(m))
				}
			}
		}
	}()
	goodObjects := float64(len(written) + 1) // the tree and the file of unmappable events
	settled := func() bool {
		code, body := httpGet(t, "http://"+admin+"/metrics")
		if code != http.StatusOK {
			return false
		}
		if s, scrapeErr = parsePromScrape(body); scrapeErr != nil {
			return true
		}
		return s.sum("braze_currents_objects_done") == goodObjects && s.sum("braze_currents_objects_corrupt") == 1 &&
			s.sum("braze_currents_objects_failed") >= 1 && s.sum("currents_dead_letters") == 4 &&
			s.sum("braze_currents_checkpoint_saves") >= 1
	}
	waitUntil(t, "objects done, corrupt and failed, and dead letters in /metrics", settled)
	if scrapeErr != nil {
		t.Fatalf("/metrics does not parse: %v", scrapeErr)
	}

	// What the events panel computes: in - mapped - unmappable is what the
	// mapping filtered out.
	in, mapped, unm := s.sum("currents_events_in"), s.sum("currents_events_mapped"), s.sum("currents_events_unmappable")
	if want := float64(sendableIDs + filtered + len(unmappable.Records)); in != want {
		t.Errorf("currents_events_in = %v, want %v", in, want)
	}
	if mapped != float64(sendableIDs) || unm != float64(len(unmappable.Records)) || in-mapped-unm != float64(filtered) {
		t.Errorf("mapped %v, unmappable %v, filtered out %v; want %d, %d, %d", mapped, unm, in-mapped-unm,
			sendableIDs, len(unmappable.Records), filtered)
	}
	if s.sum("segment_retries") != 1 || s.sum("segment_calls_sent") != float64(sendableIDs) {
		t.Errorf("segment_retries %v, segment_calls_sent %v; want 1, %d", s.sum("segment_retries"), s.sum("segment_calls_sent"), sendableIDs)
	}

	checked := map[string]bool{}
	for _, u := range uses {
		if why := s.missing(u.sel); why != "" {
			t.Errorf("%s: %s", u.where, why)
		}
		checked[u.sel.metric] = true
	}
	t.Logf("%d queries, %d metric names checked against the scrape", len(queries), len(checked))
}
