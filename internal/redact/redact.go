// Package redact says how a URL that may carry credentials is shown in logs
// and errors: the Segment endpoint, the queue URLs and the braze_currents
// input's notifications. Its password (or its user, when alone) and every
// query value are written xxxxx: a secret may sit under any name (a proxy's
// ?auth=, a ?k=), so no list of names that look secret is kept. The names
// stay, to tell which setting is wrong, with the scheme, host and path.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// URL is u as logs and errors show it. A query part without = may be a
// bare token and goes whole; the parts keep their order and spelling.
func URL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, part := range parts {
			if name, _, ok := strings.Cut(part, "="); ok {
				parts[i] = name + "=xxxxx"
			} else if part != "" {
				parts[i] = "xxxxx"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	if _, ok := c.User.Password(); !ok && c.User.Username() != "" {
		// A user alone is how NATS and proxies take a token (Basic auth's
		// user).
		c.User = url.User("xxxxx")
	}
	return c.Redacted()
}

// queryValue is a query value in a URL that a message quotes: after ? or &
// and a name, up to the next parameter, a quote or a space.
var queryValue = regexp.MustCompile(`([?&][^?&=#"\s]+=)([^&#"\s]*)`)

// Query is msg with the value of every query parameter of the URLs it
// quotes written xxxxx: drivers quote a URL encoded again, its parameters
// sorted or one added, which no replacement of the URL as written finds.
// The colon or comma after a URL quoted in a sentence stays.
func Query(msg string) string {
	return queryValue.ReplaceAllStringFunc(msg, func(m string) string {
		sub := queryValue.FindStringSubmatch(m)
		value := sub[2]
		return sub[1] + "xxxxx" + value[len(strings.TrimRight(value, ":,;)")):]
	})
}

// Error is an error whose text shows msg, its secrets hidden, and which
// unwraps to err, for errors.Is, errors.As and gcerrors.Code.
func Error(msg string, err error) error { return hidden{msg, err} }

type hidden struct {
	msg string
	err error
}

func (h hidden) Error() string { return h.msg }
func (h hidden) Unwrap() error { return h.err }
