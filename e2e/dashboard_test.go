package e2e

// The Grafana dashboard (docs/grafana/currents-connect.json) is checked
// against the metrics the real binary exports: every metric a panel queries
// must be in a /metrics scrape of the shipped pipeline, so the dashboard
// cannot drift from the code.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/fixtures"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// selectorRE is a selector as the dashboard writes them, name{matchers}
// with an optional [range]: every selector filters on $job and $instance
// (checkSelectorConventions), so none goes without braces.
var selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^{}]*)\}(?:\[([^\]]*)\])?`)

// promSelector is a metric name as an expression uses it, with the text of
// its label matchers (without the braces) and its range, if any.
type promSelector struct {
	metric, matchers, rng string
}

// metricSelectors lists the selectors of expr, in order. Names are kept as
// written: a histogram's x_bucket, x_sum and x_count are resolved against
// the scrape, where the family is x.
func metricSelectors(expr string) []promSelector {
	var out []promSelector
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, promSelector{metric: m[1], matchers: m[2], rng: m[3]})
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
	if sel.rng != "" && sel.rng != "$__rate_interval" && sel.rng != "$__range" {
		problems = append(problems, fmt.Sprintf("%s[%s]: use [$__rate_interval] (or [$__range] for a total)", sel.metric, sel.rng))
	}
	return problems
}

// TestDashboardMetricNames checks the PromQL and scrape reading on their
// own, so that a scrape check passing means something.
func TestDashboardMetricNames(t *testing.T) {
	parallelCPU(t)
	sels := metricSelectors(`clamp_min(sum by (le) (rate(a_bucket{job=~"$job",x="by (b)"}[$__rate_interval])) - ` +
		`(sum(rate(b{instance=~"$instance"}[1h])) or vector(0)), 0) / max(c{})`)
	want := []promSelector{{"a_bucket", `job=~"$job",x="by (b)"`, "$__rate_interval"}, {"b", `instance=~"$instance"`, "1h"}, {"c", "", ""}}
	if !slices.Equal(sels, want) {
		t.Errorf("selectors %q, want %q", sels, want)
	}
	if p := checkSelectorConventions(sels[1]); len(p) != 2 {
		t.Errorf("conventions of %+v: %q, want no $job and a 1h range", sels[1], p)
	}
	if q, ok := variableQueryExpr(`label_values(input_received{path="root.input",job=~"$job"}, instance)`); !ok || q != `input_received{path="root.input",job=~"$job"}` {
		t.Errorf("label_values query read as %q, %v", q, ok)
	}

	s, err := parseScrape(`# TYPE lat_seconds histogram
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
	if s.sum("sent", "") != 4 || s.sum("sent", `note="b"`) != 0 {
		t.Errorf("sum(sent) = %v, sum(sent{note=\"b\"}) = %v", s.sum("sent", ""), s.sum("sent", `note="b"`))
	}
}

// dashboardPipeline is a shipped pipeline, the dashboard row that shows it
// and the scenario that returns its scrape.
type dashboardPipeline struct {
	name, row string // row "": every row not another pipeline's
	scrape    func(*testing.T) scrape
}

// dashboardPipelines say which scrape checks which panels: each row named
// here shows a pipeline of its own, every other row the bucket pipeline.
var dashboardPipelines = []dashboardPipeline{
	{"bucket", "", bucketScrape.get},
	{"custom_http", "Custom HTTP pipeline", dashboardHTTPScrape},
	{"notifications", "Notifications pipeline", notificationsScrape.get},
}

// sharedScrape is a scenario's scrape, taken by the first test that needs
// it: the dashboard's test and the alerting rules' check the same
// pipelines, and each scenario takes seconds.
type sharedScrape struct {
	run   func(*testing.T) scrape
	mu    sync.Mutex
	taken scrape
}

func (s *sharedScrape) get(t *testing.T) scrape {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken == nil {
		if taken := s.run(t); !t.Failed() {
			s.taken = taken
		}
	}
	return s.taken
}

var (
	bucketScrape        = &sharedScrape{run: dashboardScenarioScrape}
	notificationsScrape = &sharedScrape{run: dashboardNotificationsScrape}
)

// TestDashboardMatchesScrape runs the shipped pipelines through every path a
// panel shows and checks every metric of every panel against the /metrics
// of the pipeline its row shows: the bucket pipeline (events sent, filtered
// out and unmappable, a Segment 500 and its retry, a call Segment rejects, a
// corrupt and an unreadable object, an .avro.gz it skips, checkpoint saves),
// the Custom HTTP one (dashboardHTTPScrape) and the notifications one
// (dashboardNotificationsScrape).
func TestDashboardMatchesScrape(t *testing.T) {
	parallelCPU(t)
	data, err := os.ReadFile(filepath.Join(repoRoot, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	queries := loadDashboard(t, data)
	type use struct {
		where string
		sel   promSelector
	}
	uses := map[string][]use{} // by the row of a pipeline, "" for the bucket one's
	for _, q := range queries {
		row := ""
		if slices.ContainsFunc(dashboardPipelines, func(p dashboardPipeline) bool { return p.row == q.row }) {
			row = q.row
		}
		// A deployment that does not run the pipeline has none of its
		// metrics: its panels must say No data, not show a constant.
		if row != "" && strings.Contains(q.expr, "vector(") {
			t.Errorf("%s in row %q: a vector() would show on deployments without that pipeline", q.where, row)
		}
		sels := metricSelectors(q.expr)
		if len(sels) == 0 {
			t.Errorf("%s queries no metric: %s", q.where, q.expr)
		}
		for _, s := range sels {
			if q.panel {
				for _, p := range checkSelectorConventions(s) {
					t.Errorf("%s: %s", q.where, p)
				}
			}
			uses[row] = append(uses[row], use{q.where, s})
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// One after the other, each pipeline stopped before the next starts.
	for _, pl := range dashboardPipelines {
		t.Run(pl.name, func(t *testing.T) {
			if len(uses[pl.row]) == 0 {
				t.Fatalf("no panel queries a metric in row %q", pl.row)
			}
			s := pl.scrape(t)
			checked := map[string]bool{}
			for _, u := range uses[pl.row] {
				if why := s.missing(u.sel); why != "" {
					t.Errorf("%s: %s", u.where, why)
				}
				checked[u.sel.metric] = true
			}
			t.Logf("%d metric names checked against the scrape", len(checked))
		})
	}
}

// dashboardScenarioScrape runs the shipped pipeline through every path a
// panel or an alert shows and returns its /metrics once every count is in:
// the alerting rules' test (alerts_test.go) checks its selectors against
// the same scrape.
func dashboardScenarioScrape(t *testing.T) scrape {
	t.Helper()
	// The bucket: the counter tests' mix (countsMix), an object that is not
	// Avro (corrupt), one that cannot be opened (a symlink to itself:
	// failed, read_attempts=1 to fail at once) and a gzipped copy of a good
	// one, .avro.gz, never read (skipped, compressed).
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	written, want := countsMix(t, bucket, 91)
	sendableIDs, unmappable := 0, 0
	for _, c := range want {
		sendableIDs += c.mapped
		unmappable += c.unmappable
	}
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
	gzipCopy(t, written[0].Path, written[0].Path+".gz")

	srv := segmentapi.StartT(t, e2eWriteKey)
	// One retry (500), then one call Segment rejects for good (400 to a
	// request of one call: unmappable events never reach the segment output,
	// so this is what makes segment_calls_failed appear).
	srv.FailNext(1, http.StatusInternalServerError)
	srv.FailNext(1, http.StatusBadRequest)
	admin, p := startWatchingPipeline(t, "file://"+bucket, srv, dir, "--set", "input.braze_currents.read_attempts=1",
		"--set", "output.fallback.0.reject_errored.segment.max_calls_per_request=1")
	sent := sendableIDs - 1
	waitUntil(t, "every sendable event but the rejected one in Segment", func() bool { return srv.UniqueMessageIDs() == sent })
	var s scrape
	var scrapeErr error
	// At the test's end, so that a failed check of the caller's shows them too.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connect logs:\n%s", lastLines(p.logs(), 30))
			if s != nil {
				for _, m := range []string{"braze_currents_objects_done", "braze_currents_objects_corrupt", "braze_currents_objects_failed",
					"braze_currents_objects_skipped", "currents_dead_letters", "braze_currents_checkpoint_saves"} {
					t.Logf("last scrape: %s %v", m, s.sum(m, ""))
				}
			}
		}
	})
	goodObjects := float64(len(written))
	settled := func() bool {
		code, body := httpGet(t, "http://"+admin+"/metrics")
		if code != http.StatusOK {
			return false
		}
		if s, scrapeErr = parseScrape(body); scrapeErr != nil {
			return true
		}
		return s.sum("braze_currents_objects_done", "") == goodObjects && s.sum("braze_currents_objects_corrupt", "") == 1 &&
			s.sum("braze_currents_objects_failed", "") >= 1 && s.sum("braze_currents_objects_skipped", `reason="compressed"`) >= 1 &&
			s.sum("currents_dead_letters", "") == float64(unmappable+1) && s.sum("braze_currents_checkpoint_saves", "") >= 1
	}
	waitUntil(t, "objects done, corrupt, failed and skipped, and dead letters in /metrics", settled)
	if scrapeErr != nil {
		t.Fatalf("/metrics does not parse: %v", scrapeErr)
	}

	// What the events panel computes, type by type. The dead letters are the
	// unmappable events and the call Segment rejected, of whichever type
	// Segment got first: the file says which.
	letters := deadletter.Read(t, filepath.Join(dir, "dead.jsonl"), false)
	if len(letters) != unmappable+1 {
		t.Errorf("%d dead letters, want %d", len(letters), unmappable+1)
	}
	for et, c := range want {
		c.deadLetters = 0
		for _, l := range letters {
			if l.EventType == et {
				c.deadLetters++
			}
		}
		if c.deadLetters != c.unmappable && c.deadLetters != c.unmappable+1 {
			t.Errorf("%d dead letters of %s, want its %d unmappable events and maybe the rejected call", c.deadLetters, et, c.unmappable)
		}
		want[et] = c
	}
	checkTypeCounts(t, s, "braze_currents_events_read", want)
	// Counted once, however many polls list it again.
	if got := s.sum("braze_currents_objects_skipped", ""); got != 1 {
		t.Errorf("braze_currents_objects_skipped %v, want 1 (the .avro.gz)", got)
	}
	if s.sum("segment_retries", "") != 1 || s.sum("segment_calls_sent", "") != float64(sent) || s.sum("segment_calls_failed", `cause="rejected"`) != 1 {
		t.Errorf("segment_retries %v, segment_calls_sent %v, segment_calls_failed{cause=\"rejected\"} %v; want 1, %d, 1",
			s.sum("segment_retries", ""), s.sum("segment_calls_sent", ""), s.sum("segment_calls_failed", `cause="rejected"`), sent)
	}
	return s
}

// gzipCopy writes src gzipped to dst, as a lifecycle rule or a copy tool
// recompressing Braze's objects would.
func gzipCopy(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
