package e2e

import (
	"strings"
	"testing"
)

// TestShippedConfigFailsFastOnBadSettings: a setting that no retry can fix
// stops the pipeline at start, with a non-zero exit and a message naming it,
// instead of retrying for ever.
func TestShippedConfigFailsFastOnBadSettings(t *testing.T) {
	parallelCPU(t)
	base := map[string]string{"CURRENTS_URL": "file://" + t.TempDir(), "SEGMENT_WRITE_KEY": e2eWriteKey,
		"SEGMENT_ENDPOINT": "http://127.0.0.1:9", "CONNECT_HTTP_ADDRESS": "127.0.0.1:0", "CURRENTS_WATCH": "false"}
	for _, c := range []struct{ name, key, value, want string }{
		{"url without a scheme", "CURRENTS_URL", "/tmp/x", `url "/tmp/x" has no scheme`},
		{"unknown scheme", "CURRENTS_URL", "mem://bucket", `unknown scheme "mem"`},
		{"missing directory", "CURRENTS_URL", "file:///no/such/dir", "/no/such/dir"},
		{"prefix in the bucket URL", "CURRENTS_URL", "s3://acme/currents?region=us-east-1", `url "s3://acme/currents": a s3 URL names the bucket only`},
		{"unknown bucket setting", "CURRENTS_URL", "s3://acme?regin=us-east-1", `url "s3://acme": unknown query parameter "regin"`},
		{"unknown region", "SEGMENT_REGION", "asia", "is not a Segment region: use us or eu"},
		{"no batch in flight", "SEGMENT_MAX_IN_FLIGHT", "0", "max_in_flight must be at least 1 (SEGMENT_MAX_IN_FLIGHT in the shipped configs), got 0"},
		{"endpoint without a scheme", "SEGMENT_ENDPOINT", "api.segment.io", "endpoint api.segment.io is not an http:// or https:// URL with a host"},
	} {
		var env []string
		for k, v := range base {
			if k != c.key {
				env = append(env, k+"="+v)
			}
		}
		env = append(env, c.key+"="+c.value)
		out, err := runConnect(t, repoRoot, env, "-c", shippedConfig)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %v, want a failure saying %q:\n%s", c.name, err, c.want, lastLines(out, 10))
		}
	}
}

// TestCustomHTTPConfigRefusesATokenInNewlines: a CURRENTS_HTTP_TOKEN with
// a newline at either end (a Kubernetes secret made from a file keeps the
// file's last newline) stops the shipped Custom HTTP pipeline at start, as
// the README says. Connect writes a variable's newline into the config as
// the two characters \n, which the config's block scalar keeps: the token
// was then the key and a backslash and an n, and every Braze request got 401.
func TestCustomHTTPConfigRefusesATokenInNewlines(t *testing.T) {
	parallelCPU(t)
	for _, token := range []string{"s3cret\n", "\ns3cret"} {
		env := []string{"CURRENTS_HTTP_TOKEN=" + token, "CURRENTS_HTTP_ADDRESS=127.0.0.1:0",
			"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=http://127.0.0.1:9", "CONNECT_HTTP_ADDRESS=127.0.0.1:0"}
		out, err := runConnect(t, repoRoot, env, "-c", httpConfig)
		if err == nil || !strings.Contains(out, "token") || !strings.Contains(out, "newline") || strings.Contains(out, "s3cret") {
			t.Errorf("token %q: exit %v, want a failure at start naming the newline, without the token:\n%s", token, err, lastLines(out, 10))
		}
	}
}
