// Package redact says how a URL that may carry credentials is shown in logs
// and errors: the Segment endpoint, the queue URLs and the braze_currents
// input's notifications. Its password (or its user, when alone) and every
// query value are written xxxxx: a secret may sit under any name (a proxy's
// ?auth=, a ?k=), so no list of names that look secret is kept. The names
// stay, to tell which setting is wrong, with the scheme, host and path.
package redact

import (
	"errors"
	"fmt"
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

// ParseError is the refusal of a URL, given in the config field field,
// that url.Parse refused with err.
func ParseError(field string, err error) error {
	return fmt.Errorf("%s is not a URL: %s", field, ParseReason(err))
}

// ParseReason is why url.Parse refused a URL, quoting nothing of it: its
// reasons quote a bad escape's three characters and what it took for a port,
// pieces of a password pasted unescaped (a % in it, or a / that ends the
// host early), and url.Error quotes the URL whole.
func ParseReason(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var escape url.EscapeError
	switch {
	case errors.As(err, &escape):
		return "an invalid % escape (write a % as %25, and a reserved character of a password percent-encoded)"
	case strings.HasPrefix(err.Error(), "invalid port "):
		return "an invalid port after the host (a port that is not a number, or a / ? or # in a password, which must be percent-encoded)"
	case uerr == nil:
		return "it does not parse"
	}
	return err.Error()
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
