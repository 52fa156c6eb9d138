package segment

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/internal/redact"
)

// redactedURL is raw as the messages that name the endpoint show it
// (redact.URL): a proxy's URL may carry credentials, as user:password@, a
// token as the user or in the query (?token=…, ?api_key=…), which connect
// echo scrubs too. One that does not parse is named by the parser's reason
// alone (a bad port, a space before the scheme), which quotes no more of it.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL: " + redact.ParseReason(err) + ")"
	}
	return redact.URL(u)
}

// checkEndpoint refuses an endpoint that is not an http or https URL with a
// host (api.segment.io without its scheme, a proxy's host:port): no request
// to it can be made, and each would fail as transient, retried for ever.
func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %s is not an http:// or https:// URL with a host: give the API's root, like https://api.segment.io, or a proxy's (SEGMENT_ENDPOINT in the shipped configs)",
			fieldEndpoint, redactedURL(endpoint))
	}
	return nil
}

// warnEndpointPath warns, once at start, of an endpoint that ends in a
// path of the API itself (…/v1, …/v1/batch, as copied from Segment's docs):
// the output adds /v1/batch, so every request would go to …/v1/v1/batch
// and be refused with a 404 that the output can only report as a refusal.
// Only a warning: a proxy may mount anything at any path.
func warnEndpointPath(log *service.Logger, endpoint string) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return
	}
	p := strings.TrimSuffix(u.Path, "/")
	for _, api := range []string{"/v1/batch", "/v1/track", "/v1"} {
		if strings.HasSuffix(p, api) {
			log.Warnf("%s %s ends in %s, and the output adds /v1/batch to it: requests go to %s; give the API's root (like https://api.segment.io) unless a proxy mounts Segment's API there",
				fieldEndpoint, redactedURL(endpoint), api, redactedURL(batchURL(endpoint)))
			return
		}
	}
}

// batchURL is where the calls of endpoint go: /v1/batch after its path,
// as escaped, its query kept (a proxy's token). Added to the URL whole, a query took
// the path into its last value (…?token=abc/v1/batch).
func batchURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint + "/v1/batch" // refused at start (checkEndpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/batch"
	if u.RawPath != "" {
		// Kept: a proxy's path may hold an escaped character (%2F), which
		// the decoded path alone would send as itself (/).
		u.RawPath = strings.TrimSuffix(u.RawPath, "/") + "/v1/batch"
	}
	return u.String()
}
