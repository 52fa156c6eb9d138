package subscription

import (
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/currents-connect/currents-connect/internal/redact"
)

// secretParam matches the names of the Service Bus connection string's
// parts that may hold a secret.
var secretParam = regexp.MustCompile(`(?i)key|secret|token|password|passwd|sig|credential|connection`)

// ShownURL is u as logs and errors show it (redact.URL): its password (or
// its user, when alone) and every query value written xxxxx. secrets are
// what must not show of them where a driver's error quotes them out of the
// URL: the password, as written and escaped, the user alone, and each
// query value in quotes (gocloud's "invalid value %q"). A rabbit URL's
// include RABBIT_SERVER_URL's, which gocloud's opener quotes when it cannot
// parse it; an azuresb URL's the connection string's.
func ShownURL(u *url.URL) (shown string, secrets []string) {
	if p := passwordSecrets(u.User); p != nil {
		secrets = append(secrets, p...)
	} else if name := u.User.Username(); name != "" {
		secrets = append(secrets, name, url.User(name).String())
	}
	for _, vals := range u.Query() {
		for _, v := range vals {
			if v != "" {
				secrets = append(secrets, strconv.Quote(v))
			}
		}
	}
	switch u.Scheme {
	case "rabbit":
		secrets = append(secrets, RabbitServerSecrets()...)
	case "azuresb":
		secrets = append(secrets, serviceBusSecrets()...)
	}
	return redact.URL(u), secrets
}

// HideURL is err, from opening or using the subscription or topic at raw,
// with raw shown as ShownURL shows it, the query values of any URL it
// quotes (raw encoded again) and the secrets written xxxxx: gocloud's
// errors quote the URL whole. One that does not parse is named by
// url.Parse's reason alone. It unwraps to err.
func HideURL(raw string, err error) error {
	u, perr := url.Parse(raw)
	if perr != nil {
		return redact.Error("not a URL: "+redact.ParseReason(perr), err)
	}
	shown, secrets := ShownURL(u)
	return redact.Error(HideSecrets(redact.Query(strings.ReplaceAll(err.Error(), raw, shown)), secrets), err)
}

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
