package subscription

import (
	"net/url"
	"os"
	"regexp"
	"strings"
)

// secretParam matches query parameter names that may hold a secret: their
// values are never logged or put in errors.
var secretParam = regexp.MustCompile(`(?i)key|secret|token|password|passwd|sig|credential|connection`)

// ShownURL is u as logs and errors show it: its password (or its user, when
// alone) and the values of the query parameters that may hold a secret
// written xxxxx. secrets are the values hidden, each as written and
// escaped: a driver's error may quote the URL encoded again (the Rabbit
// subscription adds its prefetch_count). A rabbit URL's include
// RABBIT_SERVER_URL's, which gocloud's opener quotes when it cannot parse
// it; an azuresb URL's the connection string's.
func ShownURL(u *url.URL) (shown string, secrets []string) {
	c := *u
	if p := passwordSecrets(c.User); p != nil {
		secrets = append(secrets, p...)
	} else if name := c.User.Username(); name != "" {
		// A user alone is how NATS and others take a token: no driver
		// here reads a URL's user, so hiding it costs nothing.
		secrets = append(secrets, name, url.User(name).String())
		c.User = url.User("xxxxx")
	}
	query := c.Query()
	for name, vals := range query {
		if !secretParam.MatchString(name) {
			continue
		}
		for i, v := range vals {
			if v != "" {
				secrets = append(secrets, v, url.QueryEscape(v))
				vals[i] = "xxxxx"
			}
		}
	}
	switch c.Scheme {
	case "rabbit":
		secrets = append(secrets, RabbitServerSecrets()...)
	case "azuresb":
		secrets = append(secrets, serviceBusSecrets()...)
	}
	c.RawQuery = query.Encode()
	return c.Redacted(), secrets
}

// HideURL is err, from opening or using the subscription or topic at raw,
// with raw shown as ShownURL shows it and its secrets written xxxxx:
// gocloud's errors quote the URL whole. It unwraps to err.
func HideURL(raw string, err error) error {
	u, perr := url.Parse(raw)
	if perr != nil {
		return hidden{HideSecrets(err.Error(), []string{raw}), err}
	}
	shown, secrets := ShownURL(u)
	return hidden{HideSecrets(strings.ReplaceAll(err.Error(), raw, shown), secrets), err}
}

// hidden shows an error's text with its secrets hidden, and unwraps to the
// error, for errors.Is and gcerrors.Code.
type hidden struct {
	msg string
	err error
}

func (h hidden) Error() string { return h.msg }
func (h hidden) Unwrap() error { return h.err }

// RabbitServerSecrets are what must not show of RABBIT_SERVER_URL: the
// whole value (url's errors quote it) and its password, as written and
// escaped. Empty when it is not set.
func RabbitServerSecrets() []string {
	server := os.Getenv(RabbitServerEnv)
	if server == "" {
		return nil
	}
	secrets := []string{server}
	if u, err := url.Parse(server); err == nil {
		secrets = append(secrets, passwordSecrets(u.User)...)
	}
	return secrets
}

// passwordSecrets are user's password, as written and escaped, or nil when
// it has none.
func passwordSecrets(user *url.Userinfo) []string {
	if p, ok := user.Password(); ok && p != "" {
		return []string{p, strings.TrimPrefix(url.UserPassword("", p).String(), ":")}
	}
	return nil
}

// serviceBusConnEnv names the variable gocloud's azuresb opener reads the
// connection string from.
const serviceBusConnEnv = "SERVICEBUS_CONNECTION_STRING"

// serviceBusSecrets are what must not show of the Service Bus connection
// string: the whole value, which the SDK quotes when it cannot parse it
// (its SharedAccessKey written xxxxx, not a SharedAccessSignature), and the
// values of its parts whose names look secret. Empty when it is not set.
func serviceBusSecrets() []string {
	conn := os.Getenv(serviceBusConnEnv)
	if conn == "" {
		return nil
	}
	secrets := []string{conn}
	for _, part := range strings.Split(conn, ";") {
		if name, v, ok := strings.Cut(part, "="); ok && v != "" && secretParam.MatchString(name) {
			secrets = append(secrets, v)
		}
	}
	return secrets
}

// HideSecrets replaces each secret in msg with xxxxx.
func HideSecrets(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}
