package segment

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxRetryAfter caps how long a Retry-After answer may hold a request.
const maxRetryAfter = 10 * time.Minute

// longRetryAfter is a Retry-After long enough to warn of: shorter ones are
// a rate limit's usual second or two, and retries log at debug.
const longRetryAfter = 10 * time.Second

// maxDetail is how much of an answer's body errors quote.
const maxDetail = 1024

// postResult is one HTTP exchange with Segment.
type postResult struct {
	status     int
	page       bool // a web page: from a portal, proxy or load balancer, not the API
	retryAfter time.Duration
	detail     string
	err        error
}

// post sends one request. It always drains and closes the response body, so
// that keep-alive connections are reused instead of opened per request.
func (s *sender) post(ctx context.Context, authorization string, body []byte) postResult {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.roundTrip(ctx, authorization, body)
	s.metrics.latency.Timing(time.Since(start).Nanoseconds())
	if err != nil {
		s.metrics.requests.Incr(1, "error")
		// Go's error quotes the request's URL, query and all: a proxy's
		// credentials may be there.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			uerr.URL = redactedURL(uerr.URL)
		}
		return postResult{err: err, detail: s.scrub.clean(err.Error())}
	}
	defer res.Body.Close()
	s.metrics.requests.Incr(1, strconv.Itoa(res.StatusCode))
	page := isPage(res.Header.Get("Content-Type"))
	var detail []byte
	if res.StatusCode >= 300 || page { // a 2xx page is no acceptance: say what it said
		detail, _ = io.ReadAll(io.LimitReader(res.Body, maxDetail+1))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	return postResult{
		status:     res.StatusCode,
		page:       page,
		retryAfter: parseRetryAfter(res.Header.Get("Retry-After"), time.Now()),
		detail:     s.scrub.clip(string(bytes.TrimSpace(detail)), maxDetail),
	}
}

// newClients makes the output's clients. Connections are kept alive and
// shared by every batch in flight: one for each request that may be out
// (maxRequests under every write key) and for its probe.
func (s *sender) newClients(maxRequests int) error {
	keep := (maxRequests + 1) * len(s.routes.all)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = keep
	transport.MaxIdleConns = keep
	// Through a proxy requests go by net/http's transport. An HTTP/2
	// connection that goes silent (a NAT or load balancer that
	// forgot it: established, nothing comes back) carries every request in
	// flight, and Go kept sending the retries down it until TCP gave up on
	// it (never, behind a hung proxy that still acknowledges). Go pings a
	// connection that has received nothing for half a request's time, and
	// closes it when the ping is not answered in as long: requests then move
	// to a new connection within about one request_timeout.
	transport.HTTP2 = &http.HTTP2Config{SendPingTimeout: s.requestTimeout / 2, PingTimeout: s.requestTimeout / 2}
	// A redirect is an answer about the endpoint, not the calls: followed, a
	// POST becomes a GET without them, whose 200 would accept them unsent.
	s.client = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	// Without a proxy, requests go by the output's own client (wire.go). A
	// host net/http writes otherwise than given (an IDN in punycode, an IPv6
	// zone left out of Host) goes by net/http's transport too.
	u, _ := url.Parse(s.batchURL)
	plain := !strings.ContainsFunc(u.Host, func(r rune) bool { return r >= utf8.RuneSelf || r == '%' })
	if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && proxy == nil && plain {
		if s.wire, err = newWireClient(u, keep, s.clock); err != nil {
			return err
		}
	}
	return nil
}

// roundTrip sends one request by the output's own client (wire.go), or
// by net/http's transport where a proxy is set.
func (s *sender) roundTrip(ctx context.Context, authorization string, body []byte) (*http.Response, error) {
	if s.wire != nil {
		res, err := s.wire.post(ctx, authorization, body)
		if err != nil {
			return nil, &url.Error{Op: "Post", URL: s.batchURL, Err: err}
		}
		return res, nil
	}
	reader := &closeWaiter{Reader: bytes.NewReader(body), closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.batchURL, reader)
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", authorization)
	req.Header.Set("User-Agent", userAgent)
	// The transport may read the body after Do returns; the buffer is reused
	// only once it closed the body, which it always does.
	res, err := s.client.Do(req)
	if err != nil {
		reader.wait()
		return nil, err
	}
	res.Body = &sentBody{ReadCloser: res.Body, sent: reader}
	return res, nil
}

// isPage says whether an answer is a web page. Segment's API answers JSON;
// a 2xx page comes from something in front of it (a captive portal, a
// proxy's sign-in page) that took the request and sent it nowhere.
func isPage(contentType string) bool {
	media, _, _ := mime.ParseMediaType(contentType)
	return media == "text/html" || media == "application/xhtml+xml"
}

// closeWaiter is a request body that tells when the transport is done with it.
type closeWaiter struct {
	*bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (c *closeWaiter) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *closeWaiter) wait() { <-c.closed }

// sentBody is an answer's body whose Close also waits until the transport
// is done with the request's.
type sentBody struct {
	io.ReadCloser
	sent *closeWaiter
}

func (b *sentBody) Close() error {
	err := b.ReadCloser.Close()
	b.sent.wait()
	return err
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date,
// capped at maxRetryAfter. The cap comes before the conversion to a
// Duration: a number of seconds past about 292 years wrapped round to a
// short or negative wait, so a huge Retry-After was not honoured at all.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	// Past uint64, ParseUint gives its largest value with ErrRange.
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// dryRunWriter writes each request body it is given as one line.
type dryRunWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (d *dryRunWriter) write(body []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.w.Write(append(body, '\n')); err != nil {
		return &CallError{Cause: CauseTransient, Detail: "dry run: " + err.Error()}
	}
	return nil
}
