package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/currents-connect/currents-connect/tests/promscrape"
)

// scrape is a parsed Prometheus text exposition: its families by name.
type scrape promscrape.Scrape

func parseScrape(text string) (scrape, error) {
	s, err := promscrape.Parse(strings.NewReader(text))
	return scrape(s), err
}

// scrapeMetrics reads the /metrics of Connect's HTTP server at addr.
func scrapeMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	s, err := tryScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryScrape is scrapeMetrics for a caller that polls: Connect may log that
// its input is up a moment before its HTTP server listens.
func tryScrape(addr string) (scrape, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return scrape{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return scrape{}, err
	}
	s, err := parseScrape(string(data))
	if err != nil {
		return scrape{}, fmt.Errorf("/metrics does not parse: %w", err)
	}
	return s, nil
}

// sum adds up the values of a counter's or gauge's samples whose labels
// match matchers (label="value", comma-separated; "" for all).
func (s scrape) sum(name, matchers string) float64 {
	var total float64
	for _, m := range s[name].GetMetric() {
		if hasLabels(m, exactMatchers(matchers)) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return total
}

// missing says why a selector of the dashboard matches nothing in the
// scrape, or "" when it matches. Label matchers of the form label="value"
// (no variable) must match a sample too: a panel filtering on a path that
// the config no longer has would be as empty as one with a wrong name.
func (s scrape) missing(sel promSelector) string {
	family, why := s.family(sel.metric)
	if family == nil {
		return why
	}
	if len(family.GetMetric()) == 0 {
		return fmt.Sprintf("%s (family %s) has no samples in the scrape", sel.metric, family.GetName())
	}
	want := exactMatchers(sel.matchers)
	if !slices.ContainsFunc(family.GetMetric(), func(m *dto.Metric) bool { return hasLabels(m, want) }) {
		var pairs []string
		for k, v := range want {
			pairs = append(pairs, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(pairs)
		return fmt.Sprintf("%s has no sample with %s", sel.metric, strings.Join(pairs, ","))
	}
	return ""
}

// family finds the family of a sample name: the name's own, or for x_bucket,
// x_sum and x_count the histogram (or summary) x. When there is none, it
// says why.
func (s scrape) family(name string) (*dto.MetricFamily, string) {
	if f := s[name]; f != nil {
		if t := f.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY {
			return nil, fmt.Sprintf("%s is a %s: query %s_bucket, %s_sum or %s_count", name, strings.ToLower(t.String()), name, name, name)
		}
		return f, ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		f := s[base]
		if !ok || f == nil {
			continue
		}
		if t := f.GetType(); t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY && suffix != "_bucket" {
			return f, ""
		}
		return nil, fmt.Sprintf("%s is not a series: %s is a %s, not a histogram", name, base, strings.ToLower(f.GetType().String()))
	}
	return nil, name + " is not in the scrape"
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
			return false
		}
	}
	return true
}

// exactMatcherRE is a label="value" matcher without a variable; =~, != and
// !~ do not match it, as the character before the = must be a name's.
var exactMatcherRE = regexp.MustCompile(`(?:^|,)\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"$]*)"`)

// exactMatchers reads the label="value" matchers of a selector's matchers.
func exactMatchers(matchers string) map[string]string {
	out := map[string]string{}
	for _, m := range exactMatcherRE.FindAllStringSubmatch(matchers, -1) {
		out[m[1]] = m[2]
	}
	return out
}
