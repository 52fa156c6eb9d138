package prometheus

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// streamScrape runs a stream of one generated message through processors,
// with the prometheus exporter, and returns its /metrics, fetched over HTTP
// on loopback and parsed, once the stream is done.
func streamScrape(t *testing.T, message, processors string) map[string]*dto.MetricFamily {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sb := service.NewStreamBuilder()
	sb.SetHTTPMux(mux)
	if err := sb.SetYAML(`
input:
  generate:
    count: 1
    interval: ""
    mapping: 'root = ` + message + `'
pipeline:
  processors:
` + processors + `
output:
  drop: {}
metrics:
  prometheus:
    add_process_metrics: false
    add_go_metrics: false
logger:
  level: none
`); err != nil {
		t.Fatal(err)
	}
	s, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", res.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	if families["input_received"] == nil {
		t.Fatalf("/metrics lacks Connect's own input_received:\n%s", body)
	}
	return families
}

// labelValue is the value of label name on the family's only sample.
func labelValue(t *testing.T, f *dto.MetricFamily, name string) string {
	t.Helper()
	if len(f.GetMetric()) != 1 {
		t.Fatalf("%s has %d samples, want 1", f.GetName(), len(f.GetMetric()))
	}
	for _, l := range f.GetMetric()[0].GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	t.Fatalf("%s has no label %s", f.GetName(), name)
	return ""
}

func TestStreamLabelValueOfInvalidUTF8IsCounted(t *testing.T) {
	// A label taken from the data can hold any bytes: here 0xff.
	got := streamScrape(t, `"/w==".decode("base64")`, `
    - metric:
        type: counter
        name: events
        labels:
          event_type: '${! content() }'
`)
	if f := got["events"]; f == nil || labelValue(t, f, "event_type") != "\uFFFD" || f.GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("events: %v", f)
	}
}

func TestStreamTimerLabelledLeIsRefused(t *testing.T) {
	// le is the bucket label of a histogram: a timer cannot have it.
	got := streamScrape(t, `"1000"`, `
    - metric:
        type: timing
        name: wait_ns
        value: '${! content() }'
        labels:
          le: a
    - metric:
        type: counter
        name: after
`)
	if got["wait_seconds"] != nil || got["after"] == nil {
		t.Fatalf("families: %v", got)
	}
}

func TestStreamLabelNamesThatJoinAlike(t *testing.T) {
	// Label names "a,b" and "a", "b" are three labels, not two twice.
	got := streamScrape(t, `"x"`, `
    - metric:
        type: counter
        name: joined
        labels:
          "a,b": one
    - metric:
        type: counter
        name: joined
        labels:
          a: one
          b: two
`)
	if f := got["joined"]; f == nil || labelValue(t, f, "a_b") != "one" {
		t.Fatalf("joined: %v", f)
	}
}

func TestStreamSeriesNamedLikeAHistogramsKeepTheScrape(t *testing.T) {
	// lat_seconds_count would be a sample of the histogram lat_seconds too.
	got := streamScrape(t, `"1000"`, `
    - metric:
        type: timing
        name: lat_ns
        value: '${! content() }'
    - metric:
        type: counter
        name: lat_seconds_count
`)
	if f := got["lat_seconds"]; f == nil || f.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("lat_seconds: %v", f)
	}
}

func TestStreamLabelNameWithColon(t *testing.T) {
	// A colon may be in a metric's name but not in a label's.
	got := streamScrape(t, `"x"`, `
    - metric:
        type: counter
        name: "ratio:events"
        labels:
          "event:type": one
`)
	if f := got["ratio:events"]; f == nil || labelValue(t, f, "event_type") != "one" {
		t.Fatalf("ratio:events: %v", f)
	}
}
