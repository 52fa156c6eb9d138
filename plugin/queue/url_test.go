package queue

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestURLSchemes: a scheme not compiled in fails at start, naming the field
// and the schemes there are; awssns is for the output only.
func TestURLSchemes(t *testing.T) {
	for _, c := range []struct {
		kind, url string
		ok        bool
	}{
		{"input", "pulsar://subject", false},
		{"input", "kafka://group?topic=t", false},
		{"input", "awssns:///arn:aws:sns:us-east-2:123456789012:t?region=us-east-2", false},
		{"output", "awssns:///arn:aws:sns:us-east-2:123456789012:t?region=us-east-2", true},
		{"input", "gcppubsubv2://p/s", true},
		{"output", "mem://t", true},
		{"input", "rabbit://q", true},
	} {
		var err error
		if c.kind == "input" {
			_, err = buildInput("url: " + c.url)
		} else {
			_, err = buildOutput("url: " + c.url)
		}
		if c.ok != (err == nil) {
			t.Errorf("%s %s: %v", c.kind, c.url, err)
			continue
		}
		if err != nil && !(strings.Contains(err.Error(), "field url") && strings.Contains(err.Error(), "awssqs://, ")) {
			t.Errorf("%s %s: %v, want the field and the schemes named", c.kind, c.url, err)
		}
	}
}

// TestURLSecretsHidden: neither a password nor a secret query value shows
// in the errors, whether ours or a driver's.
func TestURLSecretsHidden(t *testing.T) {
	_, err := parseURL("url", "pulsar://user:hunter2@host/s?access_token=SEKRIT", false)
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "SEKRIT") {
		t.Fatalf("error %v", err)
	}
	// An unknown parameter: the driver's error quotes the query.
	out, err := buildOutput(`url: "awssqs://sqs.us-east-2.amazonaws.com/1/q?region=us-east-2&bogus=1&secret_key=SEKRIT"`)
	if err != nil {
		t.Fatal(err)
	}
	err = out.Connect(context.Background())
	if err == nil || strings.Contains(err.Error(), "SEKRIT") || !strings.Contains(err.Error(), "sqs.us-east-2.amazonaws.com/1/q") {
		t.Fatalf("error %v", err)
	}
	t.Log(err)
}

// TestURLQueryValuesHidden: a secret may sit under any name (?auth=,
// ?k=): the refusal of a scheme and the drivers' errors, which quote the
// query, write every value xxxxx and keep the names.
func TestURLQueryValuesHidden(t *testing.T) {
	_, err := parseURL("url", "pulsar://host/s?auth=auth-never-print&k=k-never-print", false)
	if err == nil || strings.Contains(err.Error(), "never-print") || !strings.Contains(err.Error(), "pulsar://host/s?auth=xxxxx&k=xxxxx") {
		t.Errorf("scheme refused with %v, want the URL named with its values written xxxxx", err)
	}
	const sqs = `url: "awssqs://sqs.us-east-2.amazonaws.com/1/q?region=us-east-2&bogus=1&auth=auth-never-print"`
	out, err := buildOutput(sqs)
	if err != nil {
		t.Fatal(err)
	}
	in, err := buildInput(sqs)
	if err != nil {
		t.Fatal(err)
	}
	for what, connect := range map[string]func(context.Context) error{"output": out.Connect, "input": in.Connect} {
		if err := connect(context.Background()); err == nil || strings.Contains(err.Error(), "never-print") || !strings.Contains(err.Error(), "auth=xxxxx") {
			t.Errorf("%s: Connect gave %v, want the URL named with its values written xxxxx", what, err)
		}
	}
}

// TestRabbitServerURLHidden: a RABBIT_SERVER_URL that is not a URL (a %
// left unescaped in the password, a typo in the port) fails the input's
// Connect without showing it: url's errors quote it whole, and Connect's
// retries logged it again and again. The output opens through gocloud's
// default opener, dialled once per process (so perhaps already, by another
// test): its error, as gocloud words it, is scrubbed.
func TestRabbitServerURLHidden(t *testing.T) {
	for _, server := range []string{
		"amqp://guest:hunter2%@127.0.0.1:5672/",
		"amqp://guest:hunter2@127.0.0.1:56720x/",
	} {
		t.Setenv("RABBIT_SERVER_URL", server)
		in, err := buildInput("url: rabbit://orders")
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Connect(context.Background()); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "RABBIT_SERVER_URL") {
			t.Errorf("input, RABBIT_SERVER_URL %s: Connect gave %v, want an error naming the variable, not its password", server, err)
		}
		q, err := parseURL("url", "rabbit://orders", true)
		if err != nil {
			t.Fatal(err)
		}
		gocloud := fmt.Errorf("open topic rabbit://orders: failed to open default connection: failed to parse RABBIT_SERVER_URL: %w", urlError(server))
		if err := q.scrub("opening topic", gocloud); strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "RABBIT_SERVER_URL") {
			t.Errorf("output, RABBIT_SERVER_URL %s: %v, want an error naming the variable, not its password", server, err)
		}
	}
}

// TestRabbitURLSecretHiddenEncoded: the Rabbit subscription opens the URL
// encoded again (with its prefetch_count), so a secret query value shows
// escaped in gocloud's error: it is hidden in that form too.
func TestRabbitURLSecretHiddenEncoded(t *testing.T) {
	sharedRabbit(t)
	in, err := buildInput(`url: "rabbit://orders?token=hunter2%2Fx"`)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(context.Background()); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Connect gave %v, want an error without the token", err)
	}
}

// urlError is url.Parse's error for raw, which must not parse.
func urlError(raw string) error {
	_, err := url.Parse(raw)
	if err == nil {
		panic(raw + " parses")
	}
	return err
}

// TestURLThatDoesNotParseSaysWhy: the refusal names the field and the
// parser's reason, quoting nothing of the URL (a bad escape's characters
// may be a password's).
func TestURLThatDoesNotParseSaysWhy(t *testing.T) {
	_, err := parseURL("url", "nats://user:pa%zzss-never-print@host/subject", false)
	if err == nil || strings.Contains(err.Error(), "zz") || strings.Contains(err.Error(), "never-print") ||
		!strings.Contains(err.Error(), "field url is not a URL: an invalid % escape") {
		t.Fatalf("refused with %v, want the field and the reason, nothing of the URL", err)
	}
}
