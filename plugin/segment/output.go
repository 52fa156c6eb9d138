package segment

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	fieldWriteKey       = "write_key"
	fieldRegion         = "region"
	fieldEndpoint       = "endpoint"
	fieldMaxCalls       = "max_calls_per_request"
	fieldRequestTimeout = "request_timeout"
	fieldMaxRetries     = "max_retries"
	fieldBackoff        = "backoff"
	fieldDryRun         = "dry_run"
	fieldDryRunPath     = "dry_run_path"
	fieldBatching       = "batching"
)

// Segment's regional endpoints: a write key works only in its own region.
var regionEndpoints = map[string]string{
	"us": "https://api.segment.io",
	"eu": "https://events.eu1.segmentapis.com",
}

// Segment's limit on calls per batch request: above it Segment answers 200
// and drops the calls silently.
const segmentMaxCalls = 2500

const userAgent = "currents-connect (analytics-go/3.3.0)"

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Sends Segment calls to the Segment Tracking API, acknowledging each only once Segment accepted it.").
		Description(`
Each message is one Segment call as JSON: `+"`type`"+` (track, identify, page, screen, group or alias) and
the spec's fields (`+"`userId`, `anonymousId`, `messageId`, `timestamp`, `event`, `name`, `properties`, `traits`, `context`, `integrations`, `groupId`, `previousId`"+`).
Calls are validated and batched with `+"`github.com/segmentio/analytics-go/v3`"+` and posted to `+"`/v1/batch`"+`
within Segment's limits (32 KB per call, 500 KB and at most `+"`max_calls_per_request`"+` calls per request).

A batch is acknowledged only when Segment accepted every call in it; the calls that failed are reported
one by one, so only they are retried or routed. A message without `+"`messageId`"+` gets one derived from its
content, so a redelivery is deduplicated by Segment.

Transient failures (network errors, timeouts, 408, 429 and 5xx but 501 and 505) are retried with exponential
backoff that honours `+"`Retry-After`"+`, up to `+"`max_retries`"+` (0: until the output closes). Permanent
failures (400, 401, 403, 404, 413, 422 and other statuses, invalid calls, calls over 32 KB) fail at once with an
error naming the cause: route them to a dead letter output with `+"`fallback`"+` or `+"`reject_errored`"+`.
When Segment rejects a request of many calls, the output splits it to find the calls at fault, so the others
are still delivered. A message that a processor failed on (it carries an error, as an unmappable event does)
fails here as well, with that error, so one `+"`fallback`"+` dead letter output catches both.

When Segment stops answering (network errors, 502, 503, 504, three times in a row), the batch is handed back as
not connected: the output is then down, so `+"`/ready`"+` answers 503, and it reconnects once a probe (an empty
batch, which Segment accepts and ignores) gets an answer; the batch is then sent again.

== Metrics

- `+"`segment_calls_sent`"+`: calls Segment accepted.
- `+"`segment_calls_failed`"+` (label `+"`cause`"+`: invalid, too_large, rejected, transient, shutdown).
- `+"`segment_batches`"+`: batches written.
- `+"`segment_requests`"+` (label `+"`status`"+`: the HTTP status, or error) and `+"`segment_request_latency_ns`"+`.
- `+"`segment_retries`"+`: requests retried after a transient failure.
`).
		Fields(
			service.NewStringField(fieldWriteKey).
				Description("The write key of the Segment source. Keep it out of config files: `${SEGMENT_WRITE_KEY}`.").
				Secret().Default(""),
			service.NewStringEnumField(fieldRegion, "us", "eu").
				Description("The Segment region of the workspace.").Default("us"),
			service.NewURLField(fieldEndpoint).
				Description("Overrides the region's endpoint: for proxies and tests. Empty keeps the region's.").Optional().Advanced(),
			service.NewIntField(fieldMaxCalls).
				Description("The most calls in one request (Segment allows 2,500; requests also stay under 500 KB).").
				Default(500).Advanced(),
			service.NewDurationField(fieldRequestTimeout).
				Description("How long one request may take before it counts as a transient failure.").
				Default("10s").Advanced(),
			service.NewIntField(fieldMaxRetries).
				Description("How many times a request is retried after transient failures before its calls fail; 0 retries until the output closes, which keeps calls in the pipeline through an outage.").
				Default(0).Advanced(),
			service.NewBackOffField(fieldBackoff, true, &backoff.ExponentialBackOff{
				InitialInterval: 500 * time.Millisecond, MaxInterval: 30 * time.Second,
			}).Advanced(),
			service.NewBoolField(fieldDryRun).
				Description("Build the exact request bodies but write them, one JSON line each, to `dry_run_path` instead of sending them. Needs no write key.").
				Default(false),
			service.NewStringField(fieldDryRunPath).
				Description("Where dry-run bodies go; empty for stdout.").Default(""),
			service.NewOutputMaxInFlightField().Default(16),
			service.NewBatchPolicyField(fieldBatching).
				Description("Batches messages from several upstream batches before writing. Off by default: the `braze_currents` input and scanner already emit batches (and analytics-go splits them into requests within Segment's limits), and Connect can only report which messages failed to the upstream batch a message came from when batches are not merged: with this on, a batch with any failed call fails as a whole upstream (a `fallback` dead letter then receives its accepted calls too, and the input retries them all). Turn it on for inputs that emit single messages."),
		)
}

func init() {
	service.MustRegisterBatchOutput("segment", outputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			out, err := outputFromParsed(conf, mgr)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			policy, err := conf.FieldBatchPolicy(fieldBatching)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			maxInFlight, err := conf.FieldMaxInFlight()
			return out, policy, maxInFlight, err
		})
}

func outputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*output, error) {
	writeKey, err := conf.FieldString(fieldWriteKey)
	if err != nil {
		return nil, err
	}
	region, err := conf.FieldString(fieldRegion)
	if err != nil {
		return nil, err
	}
	endpoint := regionEndpoints[region]
	if conf.Contains(fieldEndpoint) {
		override, err := conf.FieldString(fieldEndpoint)
		if err != nil {
			return nil, err
		}
		if override != "" { // empty, as from an unset ${SEGMENT_ENDPOINT:}, keeps the region's
			endpoint = override
		}
	}
	s := &sender{
		endpoint:      strings.TrimSuffix(endpoint, "/"),
		authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":")),
		scrub:         newScrubber(writeKey),
		log:           mgr.Logger(),
		metrics:       newMetrics(mgr.Metrics()),
	}
	if s.maxCalls, err = conf.FieldInt(fieldMaxCalls); err != nil {
		return nil, err
	}
	if s.maxCalls < 1 || s.maxCalls > segmentMaxCalls {
		return nil, fmt.Errorf("%s must be between 1 and %d (above it Segment drops calls silently), got %d", fieldMaxCalls, segmentMaxCalls, s.maxCalls)
	}
	if s.requestTimeout, err = conf.FieldDuration(fieldRequestTimeout); err != nil {
		return nil, err
	}
	if s.maxRetries, err = conf.FieldInt(fieldMaxRetries); err != nil {
		return nil, err
	}
	if s.backoff, err = conf.FieldBackOff(fieldBackoff); err != nil {
		return nil, err
	}
	dryRun, err := conf.FieldBool(fieldDryRun)
	if err != nil {
		return nil, err
	}
	out := &output{s: s}
	if dryRun {
		if out.dryRunPath, err = conf.FieldString(fieldDryRunPath); err != nil {
			return nil, err
		}
	} else if writeKey == "" {
		return nil, fmt.Errorf("%s is required (or set %s: true to preview without sending)", fieldWriteKey, fieldDryRun)
	}
	out.dryRun = dryRun
	maxInFlight, err := conf.FieldMaxInFlight()
	if err != nil {
		return nil, err
	}
	// Connections are kept alive and shared by every batch in flight.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = maxInFlight * 4
	transport.MaxIdleConns = maxInFlight * 4
	s.client = &http.Client{Transport: transport}
	return out, nil
}

// output is the segment batch output.
type output struct {
	s          *sender
	dryRun     bool
	dryRunPath string
	dryRunFile *os.File

	// closing is cancelled by Close, so that retries and requests in flight
	// stop and their calls are nacked, never acked unsent.
	closing context.Context
	stop    context.CancelFunc
}

func (o *output) Connect(ctx context.Context) error {
	if o.dryRun && o.s.dryRun == nil {
		w := os.Stdout
		if o.dryRunPath != "" {
			f, err := os.OpenFile(o.dryRunPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("opening dry run file: %w", err)
			}
			o.dryRunFile, w = f, f
		}
		o.s.dryRun = &dryRunWriter{w: w}
	}
	if o.closing == nil {
		o.closing, o.stop = context.WithCancel(context.Background())
		o.s.reachable.Store(true)
		return nil
	}
	if !o.dryRun && !o.s.reachable.Load() {
		return o.s.probe(ctx)
	}
	return nil
}

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if o.closing == nil || o.closing.Err() != nil {
		return service.ErrNotConnected
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(o.closing, cancel)
	defer stopOnClose()
	return o.s.send(ctx, batch)
}

func (o *output) Close(ctx context.Context) error {
	if o.stop != nil {
		o.stop()
	}
	o.s.client.CloseIdleConnections()
	if o.dryRunFile != nil {
		return o.dryRunFile.Close()
	}
	return nil
}
