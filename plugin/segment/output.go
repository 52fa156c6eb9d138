package segment

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	fieldWriteKey       = "write_key"
	fieldWriteKeys      = "write_keys"
	fieldRoute          = "route"
	fieldRegion         = "region"
	fieldEndpoint       = "endpoint"
	fieldMaxCalls       = "max_calls_per_request"
	fieldRequestTimeout = "request_timeout"
	fieldMaxRetries     = "max_retries"
	fieldBackoff        = "backoff"
	fieldDryRun         = "dry_run"
	fieldDryRunPath     = "dry_run_path"
	fieldBatching       = "batching"
	fieldMaxRequests    = "max_requests_in_flight"
	fieldUnreachable    = "unreachable_after"
	fieldSummary        = "summary_interval"
)

// Segment's regional endpoints: a write key works only in its own region.
var regionEndpoints = map[string]string{
	"us": "https://api.segment.io",
	"eu": "https://events.eu1.segmentapis.com",
}

// Segment's limit on calls per batch request: above it Segment answers 200
// and drops the calls silently.
const segmentMaxCalls = 2500

const userAgent = "currents-connect"

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Sends Segment calls to the Segment Tracking API, acknowledging each only once Segment accepted it.").
		Description(`
Each message is one Segment call as JSON: `+"`type`"+` (track, identify, page, screen, group or alias) and
the spec's fields (`+"`userId`, `anonymousId`, `messageId`, `timestamp`, `event`, `name`, `properties`, `traits`, `context`, `integrations`, `groupId`, `previousId`"+`).
Calls are checked with the types and `+"`Validate`"+` of `+"`github.com/segmentio/analytics-go/v3`"+` and posted to
`+"`/v1/batch`"+` within Segment's limits (32 KB per call, 500 KB and at most `+"`max_calls_per_request`"+` calls per
request).

Calls from every batch being written share requests (group commit): while `+"`max_requests_in_flight`"+`
requests are out, arriving calls wait and go out together in the next one. So a one-message input (say
`+"`http_server`"+` or a queue) is batched with no `+"`batching`"+` policy and no added latency, and each upstream
message is still acknowledged only for its own call: a batch is acknowledged only when Segment accepted
every call in it, and the calls that failed are reported one by one, so only they are retried or routed. A
message without `+"`messageId`"+` gets one derived from its content, so a redelivery is deduplicated by Segment.

Transient failures (network errors, timeouts, 408, 429 and 5xx but 501 and 505) are retried with exponential
backoff that honours `+"`Retry-After`"+`, up to `+"`max_retries`"+` (0: until the output closes). Permanent
failures (400, 413, 422, invalid calls, calls over 32 KB) fail at once with an error naming
the cause: route them to a dead letter output with `+"`fallback`"+` or `+"`reject_errored`"+`. When Segment rejects
a request of many calls, the output splits it to find the calls at fault, so the others are still delivered. A
message that a processor failed on (it carries an error, as an unmappable event does) fails here as well,
with that error, so one `+"`fallback`"+` dead letter output catches both.

A refused write key (401, 403), an endpoint without the API (404, 405, 415, 501, 505, a redirect or a 2xx web page, say a proxy's
sign-in page, or a 400 or 422 web page, a front's error page) or a proxy refusing the request (407) fails every call alike: the calls are
held, never dead-lettered. The output logs one error naming the endpoint (never the key), goes down (so
`+"`/ready`"+` answers 503) and probes until Segment accepts the key; then everything held is sent. When
Segment has accepted no request for `+"`unreachable_after`"+` while requests fail, the output goes down the same
way until a probe (an empty batch, which Segment accepts and ignores) gets an answer.

One pipeline can feed several Segment sources: `+"`write_keys`"+` names a write key per route (say, per Braze
app group), and each call goes under the key of its `+"`route`"+`, else under `+"`write_key`"+`. Each key has its
own requests and in-flight slots. A call whose route has no key, with no `+"`write_key`"+` either, fails for good
(cause `+"`no_write_key`"+`, naming the route) for the dead letter output. A refused key takes the output down as
above, whichever route it serves: every call is held until it works, and the error names the route, never the key.

When it closes, the output logs one summary line at level warn (so that it shows at any level): the calls sent
(printed, in dry run), those that failed, by cause (what a `+"`fallback`"+` routes to its dead letter output), and
those unconfirmed at shutdown (nacked, so delivered again). With the summary of a one-pass `+"`braze_currents`"+` input,
the events read and counted in neither are those the mapping filtered out. Every `+"`summary_interval`"+` (1h) it also
logs the calls sent and failed in that interval, at level warn when none was sent: then either no call came
(the mapping filtered out every event, or the input read none: its own line says which), every call failed,
or Segment was not taking calls.

== Metrics

- `+"`segment_calls_sent`"+`: calls Segment accepted.
- `+"`segment_calls_failed`"+` (label `+"`cause`"+`: `+strings.Join(failedCauses, ", ")+`).
  Calls held while Segment is down or refuses the key are not failures.
- `+"`segment_batches`"+`: batches written (one written again, after Segment was down or refused the key, counts again).
- `+"`segment_requests`"+` (label `+"`status`"+`: the HTTP status, or error) and `+"`segment_request_latency_ns`"+`.
- `+"`segment_retries`"+`: requests retried after a transient failure.

The counters are exported at 0 from start, `+"`segment_calls_failed`"+` with each cause, so that `+"`rate()`"+` and
`+"`increase()`"+` see their first counts; `+"`segment_requests`"+`' statuses appear with their first request.
`).
		Fields(
			service.NewStringField(fieldWriteKey).
				Description("The write key of the Segment source; with `write_keys`, the default one, for calls whose route has no key of its own (empty: such calls fail, for the dead letter output). Keep it out of config files: `${SEGMENT_WRITE_KEY}`. Surrounding whitespace, such as the newline a secret file ends with, is dropped, as in `write_keys`: Segment would answer 200 to the key with it and drop the calls; a key with a quote, a space or a colon inside (quotes a docker `--env-file` kept) is refused at start, for the same reason.").
				Secret().Default(""),
			service.NewStringField(fieldWriteKeys).
				Description("Several Segment sources from one pipeline: write keys by route, `route=key,route=key` (in the shipped configs, `SEGMENT_WRITE_KEYS` with Braze app group ids as routes). Each call goes under the key of its `route`, else under `write_key`. Requests carry the calls of one key only. Whitespace around routes and keys is dropped; a key with a quote, a space or a colon inside is refused at start. Empty: every call goes under `write_key`.").
				Secret().Default("").Example("6f1e0c2b9a8d7e6f5a4b3c2d="+"<write key>,0a1b2c3d4e5f6a7b8c9d0e1f="+"<write key>"),
			service.NewInterpolatedStringField(fieldRoute).
				Description("The route of a call, to find its write key in `write_keys` (read only when `write_keys` is set). The default is the Braze app group of the event: the call's `properties.app_group_id` (Braze's set holds it for 48 of its 50 types) or, for the others, the Currents integration the event came from (`braze_integration_id` metadata, from the storage inputs).").
				Default(`${! this.properties.app_group_id.or(@braze_integration_id).or("") }`).Advanced(),
			// A string with a lint rule rather than an enum: the enum's lint
			// error names neither the field nor the allowed values.
			service.NewStringField(fieldRegion).
				Description("The Segment region of the workspace: `us` or `eu`.").Default("us").
				LintRule(`root = if !["us", "eu"].contains(this) { ["region %q is not a Segment region: use us or eu (SEGMENT_REGION in the shipped configs)".format(this)] }`),
			service.NewStringField(fieldEndpoint).
				Description("Overrides the region's endpoint: for proxies and tests. Empty keeps the region's. The API's root, like `https://api.segment.io`: the output adds `/v1/batch` to its path (a query, such as a proxy's token, is kept after it), and warns at start of an endpoint ending in `/v1` or `/v1/batch`. One that is not an `http://` or `https://` URL with a host (`api.segment.io` alone) is refused at start. Messages name it with its password (or a user alone) and query values written `xxxxx`.").
				Optional().Advanced().
				Secret(), // a proxy's URL may carry a password or a token, in the query too, which a URL field's scrubbing keeps: echo scrubs it
			service.NewIntField(fieldMaxCalls).
				Description("The most calls in one request (Segment allows 2,500; requests also stay under 500 KB).").
				Default(500).Advanced(),
			service.NewDurationField(fieldRequestTimeout).
				Description("How long one request may take before it counts as a transient failure (above 0); its connection is then closed, so that a connection gone silent does not hold the requests. Through a proxy, where requests may share an HTTP/2 connection, one that receives nothing for half of it is pinged, and closed when the ping goes unanswered as long.").
				Default("10s").Advanced(),
			service.NewIntField(fieldMaxRetries).
				Description("How many times a request is retried after transient failures before its calls fail; 0 retries until the output closes, which keeps calls in the pipeline through an outage.").
				Default(0).Advanced(),
			service.NewBackOffField(fieldBackoff, true, &backoff.ExponentialBackOff{
				InitialInterval: 500 * time.Millisecond, MaxInterval: 30 * time.Second,
			}).Advanced(),
			service.NewBoolField(fieldDryRun).
				Description("Build the exact request bodies but write them, one JSON line each, to `dry_run_path` instead of sending them. Needs no write key. The keys of calls a mapping left structured are sorted, so that two runs print the same calls (each body's `sentAt` and request `messageId` differ); live requests carry the same JSON with keys unsorted. A call given as JSON text prints as it came, as it is sent.").
				Default(false),
			service.NewStringField(fieldDryRunPath).
				Description("Where dry-run bodies go; empty for stdout.").Default(""),
			service.NewIntField(fieldMaxRequests).
				Description("How many requests may be out at once under each write key, shared by every batch in flight. Calls that arrive while all are out wait and go together in the next request.").
				Default(8).Advanced(),
			service.NewDurationField(fieldUnreachable).
				Description("How long Segment may accept no request, while requests fail (the time they spend failing, added up; idle time does not count), before the output counts it as down (above 0): `/ready` answers 503 and batches wait in the pipeline until a probe gets an answer.").
				Default("30s").Advanced(),
			service.NewDurationField(fieldSummary).
				Description("How often to log the calls sent and failed since the last such line, at level warn when none was sent. Logged even when no call came, so that a mapping that filters out every event shows in the log. 0 turns it off.").
				Default("1h").Advanced(),
			service.NewOutputMaxInFlightField().
				Description("How many batches may be written at once. Their calls share requests, so a high value lets a one-message input fill requests; with large upstream batches it is also how many batches the pipeline holds in memory.").
				Default(1024),
			service.NewBatchPolicyField(fieldBatching).
				Description("Batches messages from several upstream batches before writing. Not needed: calls of concurrent batches already share requests. With it, a batch with one failed call fails as a whole upstream (Connect reports failures per upstream batch only when batches are not merged)."),
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
			if err == nil && maxInFlight < 1 { // Connect's own message names neither the field nor the variable
				err = fmt.Errorf("max_in_flight must be at least 1 (SEGMENT_MAX_IN_FLIGHT in the shipped configs), got %d", maxInFlight)
			}
			return out, policy, maxInFlight, err
		})
}

func outputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*output, error) {
	writeKey, err := conf.FieldString(fieldWriteKey)
	if err != nil {
		return nil, err
	}
	// A secret file often ends in a newline; Segment answers 200 to the key
	// with it and drops the calls, as for any key it does not know.
	writeKey = strings.TrimSpace(writeKey)
	if err := checkWriteKey(fieldWriteKey, writeKey); err != nil {
		return nil, err
	}
	region, err := conf.FieldString(fieldRegion)
	if err != nil {
		return nil, err
	}
	endpoint, ok := regionEndpoints[region]
	if !ok {
		return nil, fmt.Errorf("region %q is not a Segment region: use us or eu", region)
	}
	where := fmt.Sprintf("%s (region %s)", endpoint, region)
	if conf.Contains(fieldEndpoint) {
		override, err := conf.FieldString(fieldEndpoint)
		if err != nil {
			return nil, err
		}
		if override != "" { // empty, as from an unset ${SEGMENT_ENDPOINT:}, keeps the region's
			if err := checkEndpoint(override); err != nil {
				return nil, err
			}
			endpoint = override
			where = fmt.Sprintf("%s (endpoint set, region %s)", redactedURL(endpoint), region)
			warnEndpointPath(mgr.Logger(), endpoint)
		}
	}
	keyList, err := conf.FieldString(fieldWriteKeys)
	if err != nil {
		return nil, err
	}
	routes, err := parseWriteKeys(keyList)
	if err != nil {
		return nil, err
	}
	route, err := conf.FieldInterpolatedString(fieldRoute)
	if err != nil {
		return nil, err
	}
	s := &sender{
		batchURL: batchURL(endpoint),
		where:    where,
		clock:    clockwork.NewRealClock(),
		scrub:    newScrubber(append(slices.Collect(maps.Values(routes)), writeKey)...),
		log:      mgr.Logger(),
		metrics:  newMetrics(mgr.Metrics()),
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
	if s.requestTimeout <= 0 {
		return nil, fmt.Errorf("%s must be above 0 (every request would time out at once), got %v", fieldRequestTimeout, s.requestTimeout)
	}
	if s.maxRetries, err = conf.FieldInt(fieldMaxRetries); err != nil {
		return nil, err
	}
	if s.unreachableAfter, err = conf.FieldDuration(fieldUnreachable); err != nil {
		return nil, err
	}
	if s.unreachableAfter <= 0 {
		// The output would go down at the first transient failure, and its
		// probe and the batch go at once, whatever a 429's Retry-After asks.
		return nil, fmt.Errorf("%s must be above 0 (the output would count Segment down at its first failure and not wait out Retry-After), got %v", fieldUnreachable, s.unreachableAfter)
	}
	maxRequests, err := conf.FieldInt(fieldMaxRequests)
	if err != nil {
		return nil, err
	}
	if maxRequests < 1 {
		return nil, fmt.Errorf("%s must be at least 1, got %d", fieldMaxRequests, maxRequests)
	}
	if s.backoff, err = conf.FieldBackOff(fieldBackoff); err != nil {
		return nil, err
	}
	dryRun, err := conf.FieldBool(fieldDryRun)
	if err != nil {
		return nil, err
	}
	out := &output{s: s, maxRequests: maxRequests}
	if out.summaryPeriod, err = conf.FieldDuration(fieldSummary); err != nil {
		return nil, err
	}
	if out.summaryPeriod < 0 {
		return nil, fmt.Errorf("%s must not be negative (0 turns the summaries off), got %v", fieldSummary, out.summaryPeriod)
	}
	if dryRun {
		if out.dryRunPath, err = conf.FieldString(fieldDryRunPath); err != nil {
			return nil, err
		}
	} else if writeKey == "" && len(routes) == 0 {
		return nil, fmt.Errorf("%s (or %s) is required: the Segment source's write key (SEGMENT_WRITE_KEY in the shipped configs); or set %s: true to preview without sending",
			fieldWriteKey, fieldWriteKeys, fieldDryRun)
	}
	out.dryRun = dryRun
	s.routes = newRouter(s, maxRequests, writeKey, routes, route)
	if err := s.newClients(maxRequests); err != nil {
		return nil, err
	}
	return out, nil
}

// output is the segment batch output.
type output struct {
	s           *sender
	maxRequests int
	dryRun      bool
	dryRunPath  string
	dryRunFile  *os.File

	// closing is cancelled by Close, so that retries and requests in flight
	// stop and their calls are nacked, never acked unsent.
	closing context.Context
	stop    context.CancelFunc

	// unconfirmed counts the calls of batches that ended without an outcome
	// because the pipeline or the output stopped: they are nacked.
	unconfirmed   atomic.Int64
	summary       sync.Once
	summaryPeriod time.Duration // of the interval summaries; 0: none
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
		o.s.closing = o.closing
		if o.summaryPeriod > 0 {
			go o.logSummaries(o.s.clock.NewTicker(o.summaryPeriod))
		}
		return nil
	}
	if !o.dryRun && o.s.routes.downErr() != nil {
		return o.s.awaitUp(ctx)
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
	err := o.s.send(ctx, batch)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		o.unconfirmed.Add(int64(len(batch)))
		// Connect logs this as an error of each batch in flight at a stop:
		// a bare "context canceled" told nothing of what became of them.
		err = fmt.Errorf("stopped before Segment confirmed %d calls: they are not acknowledged, so their input delivers them again (an object read again, Braze's or the queue's retry): %w", len(batch), err)
	}
	return err
}

func (o *output) Close(ctx context.Context) error {
	if o.stop != nil {
		o.stop()
	}
	o.summary.Do(func() { o.s.log.Warnf("%s", o.runSummary()) })
	o.s.client.CloseIdleConnections()
	if o.s.wire != nil {
		o.s.wire.close()
	}
	if o.dryRunFile != nil {
		return o.dryRunFile.Close()
	}
	return nil
}
