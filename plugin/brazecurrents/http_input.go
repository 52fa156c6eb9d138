package brazecurrents

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const (
	httpFieldAddress       = "address"
	httpFieldPath          = "path"
	httpFieldToken         = "token"
	httpFieldPreviousToken = "previous_token"
	httpFieldMaxBody       = "max_body_size"
	httpFieldMaxBuffered   = "max_buffered_size"
	httpFieldTimeout       = "timeout"
	httpFieldRetryAfter    = "retry_after"
	httpFieldIdleTimeout   = "idle_timeout"
	httpFieldCertFile      = "cert_file"
	httpFieldKeyFile       = "key_file"
)

func httpInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Summary("Receives Braze Currents events from Currents' Custom HTTP connector, answering Braze with a 2xx only once every event of the request was delivered.").
		Description(`
Listens for the POSTs of Currents' Custom HTTP connector, `+"`{\"events\": [event, …]}`"+`, and emits one message
per event in the shape of a storage record (`+"`properties`"+` and `+"`user`"+` moved to the top level), with the
event type, source and record index in the metadata the `+"`braze_currents`"+` input gives them (below), so the
same mapping reads both; the input's bucket, key and integration metadata have no counterpart here.

Braze counts only a 2xx answer as received and retries anything else for up to 5 days, so the answer says
what became of the events:

- **200** once every event of the request was acknowledged downstream: accepted by Segment, or written to
  the dead letter output the pipeline routes failures to.
- **401** (before the body is read) when the `+"`Authorization`"+` header does not carry `+"`Bearer <token>`"+`.
  The token is compared in constant time, read from that header only (never the query or a cookie), and
  the scheme is case-insensitive.
- **404** for any other path than `+"`path`"+`, compared as received (`+"`//currents`"+` and `+"`/x/../currents`"+` are other
  paths, not redirected), not naming it, counted like every answer. One that carries the
  token is Braze set up with a wrong URL: it is warned of, naming the path Braze should use; others (anyone
  knocking) are logged at debug.
- **413** when the body is over `+"`max_body_size`"+`: refused from its `+"`Content-Length`"+` or, without one,
  once that much was read. A larger body is never held. A gzip body (`+"`Content-Encoding: gzip`"+`) is
  decompressed, and refused once more than `+"`max_body_size`"+` came out of it (a gzip bomb). Also when its events alone would be charged more than
  `+"`max_buffered_size`"+` (below): a body of that many small events could never be held.
- **415** for a `+"`Content-Encoding`"+` other than gzip or identity, naming it. The `+"`Content-Type`"+` is not
  looked at: the body is read as JSON whatever it says.
- **400** with a short reason when the body is not one JSON object with an `+"`events`"+` array (not JSON,
  another JSON value, data after it, no `+"`events`"+` array or one that is not an array), or when it names a
  key twice outside the events (two `+"`events`"+` arrays, say): nothing can be split out of such a body, and
  nothing of it is sent or dead-lettered.
- A malformed event of a well-formed body (not an object, no `+"`event_type`"+`, `+"`properties`"+` or `+"`user`"+`
  not objects, a field that `+"`properties`"+`, `+"`user`"+` and the event disagree on, a key named twice in it,
  nested deeper than the 10,000 levels of arrays and objects JSON is read to, the request's object and events
  array two of them)
  does not fail the request: it goes down the pipeline with the others as a message flagged with an error
  naming the event's index in the request, its `+"`id`"+` and what is wrong, whose content is the event's JSON as
  received (for one nested too deep, which Connect cannot read as JSON either, its text as a JSON string), with the metadata below (`+"`braze_event_type`"+` only when its `+"`event_type`"+` is a non-empty string). Route errors to a
  dead letter output (the shipped config does): the request is answered as above, 200 once that message too
  was acknowledged. A `+"`mapping`"+` processor runs on a flagged message as on any other, and could delete it:
  the shipped config skips it with `+"`root = if errored() { content() } else { … }`"+`. A warning is logged for each, naming the request and the reason. (Answered 400, Braze's
  connector would re-send the request's events one per request and drop for good each one answered 400
  again: the malformed event would be lost.)
- **503** with `+"`Retry-After`"+` when the events were not all delivered within `+"`timeout`"+` (Segment
  unreachable, its write key refused: the `+"`segment`"+` output holds calls then, it never drops them), when
  the body itself was not all received within `+"`timeout`"+` (a slow link), when they were refused
  downstream, or while `+"`max_buffered_size`"+` of bodies is already in flight. At once, saying `+"`shutting down`"+`,
  to a request whose events were not taken yet once the stream begins to stop (a signal): Connect takes no more
  events then, and Braze need not wait for the drain to be told; a request whose events were taken still gets its
  200 if they are delivered while the pipeline drains. A client that closes the
  connection first (a timeout of its own, or a proxy's, shorter than `+"`timeout`"+`) is logged as such:
  `+"`the client closed the connection after …`"+`. Events
  already handed to the pipeline are still delivered; Braze's retry is deduplicated by Segment through
  each call's `+"`messageId`"+`.

The warnings that requests repeat (a malformed event, an answer other than 200, 401 or 404, a wrong path
with the token) are logged at most once a minute of each kind, the others at debug level: Braze sends
many requests a second, and a line for each, through an outage, would bury the rest of the log. The next
warning of a kind says how many lines it stood for; the metrics count every one.

Every answer but a 200 closes the connection, once what is left of the body was read or `+"`timeout`"+` passed:
a client refused before its body was read cannot hold a connection by not sending it.

The input runs its own HTTP server, apart from Connect's `+"`http`"+` server: the endpoint Braze calls is exposed
to the internet, with TLS and limits of its own, while metrics and `+"`/ready`"+` stay on an internal address.

== Metadata

- `+"`braze_event_type`"+`: the event's `+"`event_type`"+`.
- `+"`braze_source`"+`: the request, `+"`http request <n> from <remote address>`"+`, as logs name it.
- `+"`braze_record_index`"+`: the event's index in the request, from 0.

== Metrics

- `+"`braze_currents_http_requests`"+` (label `+"`status`"+`): requests answered, by HTTP status. Each status the input
  answers with (`+httpStatusList()+`) is exported at 0 from start, so that `+"`rate()`"+` and
  `+"`increase()`"+` see its first count.
- `+"`braze_currents_http_events_received`"+` (label `+"`event_type`"+`): events of well-formed, authorised requests handed to the pipeline,
  malformed ones included (those without a non-empty string `+"`event_type`"+` under `+"`unknown`"+`).
  The label is one of the Currents event types this version knows, or `+"`other`"+` for every other type: the types
  come from request bodies, and each distinct string would otherwise be a series of its own. The events keep
  their type in `+"`braze_event_type`"+`.
- `+"`braze_currents_http_events_malformed`"+`: of those, the malformed events handed over flagged with an error. Exported
  at 0 from start, so that `+"`rate()`"+` and `+"`increase()`"+` see the first.
- `+"`braze_currents_http_requests_unhandled`"+`: requests the input never saw, ended by Go's HTTP server
  itself: answered 431 (headers over 64 KiB), 400 (a malformed request), 501 (a transfer coding it does not
  support) or 417 (an `+"`Expect`"+` other than `+"`100-continue`"+`), or given up on when the client left or
  stalled (10 s) before its headers were whole. Not in `+"`braze_currents_http_requests`"+`: that server does not
  tell the status. A proxy in front that adds large headers, or mangles requests, shows here. Over HTTP/2 only
  those of a connection that had no request served are counted. Exported at 0 from start.
- `+"`braze_currents_http_previous_token_requests`"+`: requests authorised by `+"`previous_token`"+` during a rotation:
  once it stays flat, Braze sends the new token and `+"`previous_token`"+` can go. Exported at 0 from start.
`).
		Fields(
			service.NewStringField(httpFieldAddress).
				Description("The address to listen on, host:port. One that cannot be (no port, a port over 65535) is refused at start; a port in use is retried every second, with `/ready` at 503, as another process may free it.").Default("0.0.0.0:8080"),
			service.NewStringField(httpFieldPath).
				Description("The path Braze POSTs to, matched exactly (not a pattern).").Default("/currents"),
			service.NewStringField(httpFieldToken).
				Description("The bearer token set in Braze's Custom HTTP connector. Required: keep it out of config files, `${CURRENTS_HTTP_TOKEN}`. A token that starts or ends with whitespace, or holds a control character, is refused at start: HTTP cannot carry it. So is one that starts or ends with the characters `\\n`, which is how Connect writes a newline of an environment variable into a config (a secret file's last newline).").
				Secret(),
			service.NewStringField(httpFieldPreviousToken).
				Description("During a rotation of the token, the one Braze still sends: requests carrying either are accepted, so that Braze's connector and this input need not change at the same moment. Set `token` to the new one and this to the old, update Braze, and remove this once `braze_currents_http_previous_token_requests` stays flat (each request carrying it is counted there, and warned of at most once a minute). Checked as `token` is, and refused when equal to it.").
				Default("").Secret().Advanced(),
			service.NewStringField(httpFieldMaxBody).
				Description("The largest request body accepted, in bytes or with a unit (`8MiB`), as sent and, for a gzip body, decompressed. Braze sends up to 100 events per request; the default leaves room for large custom events.").
				Default("8MiB"),
			service.NewStringField(httpFieldMaxBuffered).
				Description("The budget of the requests held at once, from reading a body until its events are delivered: each is charged its body's bytes plus 128 bytes per event. A body of unknown length (chunked, or gzip, decompressed) is charged as it is read, 64 KiB at a time, ahead of the requests waiting for room; the one copy made of it once read is held beside those chunks for a moment, uncharged, so its bytes are then held twice (charging it would refuse such bodies near `max_body_size` for good, and Braze retries a 413 as it is). A request that would exceed it waits, up to `timeout`, then gets a 503. Decoded events hold under 4 times their charge (measured: 3.5 to 3.9 times, from Braze's events to the smallest), so the input holds under 4 times this (32 MiB by default); a Braze request of 100 events is charged about 74 KB. While Segment is down the pipeline holds its own copies (mapped calls, the output's requests) as well: the process then holds about 12 to 18 times this (measured with Braze-sized events, 64 requests at once: a peak RSS of 150 MB at 8 MiB with 15,300 events held, 237 MB at 16 MiB, 387 MB at 32 MiB). The default keeps an outage near the bucket pipeline's footprint; raise it only with the memory to match. A single request charged over it is refused 413 (at every retry): at `max_body_size`, as by default, a body within 128 bytes an event of that size; Braze's requests of about 100 events are far below it.").
				Default("8MiB").Advanced(),
			service.NewDurationField(httpFieldTimeout).
				Description("How long a request may take from its arrival (its headers read) until its events are delivered, before Braze is told to retry (503): its wait for room in `max_buffered_size`, the reading of its body and the delivery of its events together.").
				Default("30s"),
			service.NewDurationField(httpFieldRetryAfter).
				Description("The `Retry-After` of a 503, rounded to whole seconds; a negative one is refused at start.").Default("30s").Advanced(),
			service.NewDurationField(httpFieldIdleTimeout).
				Description("How long a keep-alive connection may stay idle between requests before the input closes it. Keep it above the idle timeout of a load balancer in front, which reuses its connections to the input: Google Cloud's external HTTP(S) load balancer keeps them 600 s, AWS's ALB 60 s by default (up to 4,000 s). Below it, the balancer may send a request on a connection the input is closing, and answer Braze 502. Only a connection whose last request got a 200 is kept: every other answer closes it, so nobody without the token holds one idle.").
				Default("620s").Advanced(),
			service.NewStringField(httpFieldCertFile).
				Description("A certificate file for TLS; with `key_file`, the server speaks HTTPS only. The pair is loaded when the input connects, before it listens: a pair that cannot be loaded is an error naming both files, and nothing listens until it loads. It is loaded again at the first handshake after either file changed (a renewal written in place), and logged; a changed pair that does not load is warned of, naming both files, and the last one loaded is served meanwhile.").Default("").Advanced(),
			service.NewStringField(httpFieldKeyFile).
				Description("The certificate's private key file.").Default("").Advanced(),
		)
}

func init() {
	service.MustRegisterBatchInput("braze_currents_http", httpInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			return httpInputFromParsed(conf, mgr)
		})
}

// httpRequest is one authorised, well-formed request, waiting for its events
// to be acknowledged.
type httpRequest struct {
	batch service.MessageBatch
	done  chan error // receives the batch's acknowledgement, once
}

type httpInput struct {
	address, path       string
	tokenSum            [sha256.Size]byte
	previousSum         [sha256.Size]byte
	hasPrevious         int // 1 with a previous_token, for a constant-time match
	maxBody             int64
	timeout, retryAfter time.Duration
	idleTimeout         time.Duration
	certFile, keyFile   string
	now                 func() time.Time // the clock requests' deadlines are taken from

	buffered *budget // body bytes held, from reading to acknowledgement
	maxBuf   int64
	requests chan httpRequest
	// stopping is closed once the stream begins to stop (beginStop) or the
	// input closes; closed once it closes, at the end of the drain.
	stopping  chan struct{}
	closed    chan struct{}
	watchStop sync.Once // of ReadBatch's context
	stopBegun sync.Once
	stop      sync.Once
	counter   atomic.Uint64

	log       *service.Logger
	warnings  *logThrottle // what requests repeat, at most once a minute of each kind
	answered  *service.MetricCounter
	received  *service.MetricCounter // by event_type
	malformed *service.MetricCounter
	// previousUsed counts the requests authorised by previous_token.
	previousUsed *service.MetricCounter
	labels       *typeLabels // of received: known types, the rest as other

	conns  *connWatch // the requests net/http ends before the handler
	server *http.Server
	bound  chan string // the listener's address, once listening (tests bind :0)
}

// httpStatuses are the statuses ServeHTTP and wrongPath answer with, each exported at 0
// from start in braze_currents_http_requests: increase() misses the first
// count of a series that appears at 1, so a first 401 would alert on
// nothing. The tests fail on a status answered and not listed here.
var httpStatuses = []int{
	http.StatusOK,
	http.StatusBadRequest,
	http.StatusUnauthorized,
	http.StatusNotFound,
	http.StatusMethodNotAllowed,
	http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType,
	http.StatusServiceUnavailable,
}

// httpStatusList is httpStatuses as the reference lists them: "200, 400, …".
func httpStatusList() string {
	s := make([]string, len(httpStatuses))
	for i, status := range httpStatuses {
		s[i] = strconv.Itoa(status)
	}
	return strings.Join(s, ", ")
}

// debugWriter logs what net/http reports about connections at debug level.
type debugWriter struct{ log *service.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debugf("Custom HTTP server: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// Connect starts listening; a second call (after a lost connection
// elsewhere) finds the server running.
func (in *httpInput) Connect(ctx context.Context) error {
	if in.server != nil {
		return nil
	}
	// The key pair is loaded before listening: a certificate that cannot be
	// loaded fails Connect rather than leaving a port that serves nothing.
	var tlsConf *tls.Config
	if in.certFile != "" {
		pair, err := loadKeyPair(in.certFile, in.keyFile, in.log)
		if err != nil {
			return err
		}
		// As ServeTLS would: HTTP/2 where the client offers it.
		tlsConf = &tls.Config{GetCertificate: pair.get, NextProtos: []string{"h2", "http/1.1"}}
	}
	ln, err := net.Listen("tcp", in.address)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", in.address, err)
	}
	in.bound <- ln.Addr().String()
	scheme := "http"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "https"
	}
	in.server = &http.Server{
		Handler: http.HandlerFunc(in.route),
		// Slow clients must not hold connections (or body budget) for ever.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       in.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       in.conns.context,
		ConnState:         in.conns.state,
		// TLS handshake failures and the like: one per misbehaving client.
		ErrorLog: log.New(debugWriter{in.log}, "", 0),
	}
	go func() {
		// Serve tracks ln, so Shutdown closes it.
		if err := in.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			in.log.Errorf("Custom HTTP server on %s stopped: %v", in.address, err)
		}
	}()
	in.log.Infof("Receiving Braze Currents events at %s://%s%s", scheme, ln.Addr(), in.path)
	return nil
}

// ReadBatch hands over the events of one request; acknowledging them answers
// the request.
func (in *httpInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	// Connect (benthos v4.60.0's AsyncReader) passes every call the same
	// context, cancelled when the stream begins to stop, and calls Close only
	// once every batch read was acknowledged or shutdown_timeout ran out.
	// Watched beyond the call: while the pipeline is full, Connect is not in
	// ReadBatch when the stop begins, and calls it no more.
	in.watchStop.Do(func() { context.AfterFunc(ctx, in.beginStop) })
	select {
	case r := <-in.requests:
		return r.batch, func(_ context.Context, err error) error {
			r.done <- err
			return nil
		}, nil
	case <-in.closed:
		return nil, nil, service.ErrEndOfInput
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (in *httpInput) isClosed() bool { return isDone(in.closed) }

func (in *httpInput) isStopping() bool { return isDone(in.stopping) }

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cancelOn calls cancel once ch is closed, unless ctx ends first.
func cancelOn(ctx context.Context, cancel context.CancelFunc, ch <-chan struct{}) {
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// beginStop is the stream's stop seen: a request whose events were not
// taken yet is answered 503 at once, not held until the input closes at the
// end of the drain (up to shutdown_timeout) or until its timeout.
func (in *httpInput) beginStop() {
	in.stopBegun.Do(func() {
		close(in.stopping)
		in.log.Infof("Stopping: new requests are answered 503 at once; those whose events were taken are answered once they are delivered (200) or the input closes (503)")
	})
}

// Close stops the server. Requests still waiting are answered 503, so Braze
// sends them again.
func (in *httpInput) Close(ctx context.Context) error {
	in.beginStop()
	in.stop.Do(func() { close(in.closed) })
	if in.server == nil {
		return nil
	}
	return in.server.Shutdown(ctx)
}
