package brazecurrents

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func httpInputFromParsed(conf *service.ParsedConfig, mgr *service.Resources) (*httpInput, error) {
	in := &httpInput{requests: make(chan httpRequest), stopping: make(chan struct{}), closed: make(chan struct{}), bound: make(chan string, 1), now: time.Now,
		log: mgr.Logger(), answered: mgr.Metrics().NewCounter("braze_currents_http_requests", "status"),
		received:  mgr.Metrics().NewCounter("braze_currents_http_events_received", eventTypeLabel),
		malformed: mgr.Metrics().NewCounter("braze_currents_http_events_malformed"), labels: &typeLabels{},
		previousUsed: mgr.Metrics().NewCounter("braze_currents_http_previous_token_requests")}
	in.warnings = newLogThrottle(in.log)
	in.conns = &connWatch{unhandled: mgr.Metrics().NewCounter("braze_currents_http_requests_unhandled")}
	var token, previous, maxBody, maxBuf string
	var err error
	str := func(dst *string, name string) {
		if err == nil {
			*dst, err = conf.FieldString(name)
		}
	}
	str(&in.address, httpFieldAddress)
	str(&in.path, httpFieldPath)
	str(&token, httpFieldToken)
	str(&previous, httpFieldPreviousToken)
	str(&maxBody, httpFieldMaxBody)
	str(&maxBuf, httpFieldMaxBuffered)
	str(&in.certFile, httpFieldCertFile)
	str(&in.keyFile, httpFieldKeyFile)
	if err == nil {
		in.timeout, err = conf.FieldDuration(httpFieldTimeout)
	}
	if err == nil {
		in.retryAfter, err = conf.FieldDuration(httpFieldRetryAfter)
	}
	if err == nil {
		in.idleTimeout, err = conf.FieldDuration(httpFieldIdleTimeout)
	}
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("%s is empty: set the bearer token configured in Braze's Custom HTTP connector", httpFieldToken)
	}
	if err := checkToken(httpFieldToken, token); err != nil {
		return nil, err
	}
	in.tokenSum = sha256.Sum256([]byte(token))
	if previous != "" {
		if err := checkToken(httpFieldPreviousToken, previous); err != nil {
			return nil, err
		}
		if previous == token {
			return nil, fmt.Errorf("%s is the same as %s: during a rotation %s is the new token and %s the one Braze sends until it is updated", httpFieldPreviousToken, httpFieldToken, httpFieldToken, httpFieldPreviousToken)
		}
		in.previousSum, in.hasPrevious = sha256.Sum256([]byte(previous)), 1
	}
	if in.maxBody, err = parseSize(httpFieldMaxBody, maxBody); err != nil {
		return nil, err
	}
	if in.maxBuf, err = parseSize(httpFieldMaxBuffered, maxBuf); err != nil {
		return nil, err
	}
	if in.maxBuf < in.maxBody {
		return nil, fmt.Errorf("%s (%s) is below %s (%s): a request of the largest size could never be read", httpFieldMaxBuffered, maxBuf, httpFieldMaxBody, maxBody)
	}
	if err := checkListenAddress(in.address); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(in.path, "/") {
		return nil, fmt.Errorf("%s %q does not start with /", httpFieldPath, in.path)
	}
	if in.timeout <= 0 {
		return nil, fmt.Errorf("%s must be positive", httpFieldTimeout)
	}
	if in.idleTimeout <= 0 { // 0 would be the read timeout's, none here: for ever
		return nil, fmt.Errorf("%s must be positive", httpFieldIdleTimeout)
	}
	if in.retryAfter < 0 { // Retry-After is a count of seconds
		return nil, fmt.Errorf("%s must not be negative", httpFieldRetryAfter)
	}
	if (in.certFile == "") != (in.keyFile == "") {
		return nil, fmt.Errorf("set both %s and %s for TLS, or neither", httpFieldCertFile, httpFieldKeyFile)
	}
	in.buffered = newBudget(in.maxBuf)
	for _, status := range httpStatuses {
		in.answered.Incr(0, strconv.Itoa(status))
	}
	in.malformed.Incr(0) // as the statuses: increase() sees the first malformed event
	in.previousUsed.Incr(0)
	in.conns.unhandled.Incr(0)
	return in, nil
}

// checkListenAddress refuses an address no listener can take (no port, too
// many colons, a port over 65535): Connect would retry it every second, for
// ever, as it does a port in use, which another process may free.
func checkListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return fmt.Errorf("%s %q cannot be listened on (%v): give host:port, like 0.0.0.0:8080 (CURRENTS_HTTP_ADDRESS in the shipped configs)", httpFieldAddress, addr, err)
	}
	return nil
}

func parseSize(field, s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if n == 0 || n > 1<<40 {
		return 0, fmt.Errorf("%s %q: want a size between 1 byte and 1TiB", field, s)
	}
	return int64(n), nil
}
