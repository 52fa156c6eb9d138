package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestSASTokenNeverPrinted runs the shipped pipeline on an Azure container
// reached with AZURE_STORAGE_SAS_TOKEN while the storage endpoint refuses
// connections. azblob appends the token to every request, and a network
// error quotes the request URL: its signature must not reach the log.
func TestSASTokenNeverPrinted(t *testing.T) {
	parallelWaiting(t)
	const sig = "sas-sig-never-print-me%2B0043%3D"
	srv := segmentapi.StartT(t, e2eWriteKey)
	admin := freeAddr(t)
	env := pipelineEnv("azblob://currents", srv, filepath.Join(t.TempDir(), "dead.jsonl"),
		"CONNECT_HTTP_ADDRESS="+admin, "AZURE_STORAGE_ACCOUNT=acct",
		"AZURE_STORAGE_SAS_TOKEN=sv=2022-11-02&sp=rl&sig="+sig,
		// A local emulator's layout on an address nothing listens on.
		"AZURE_STORAGE_DOMAIN="+freeAddr(t), "AZURE_STORAGE_PROTOCOL=http", "AZURE_STORAGE_IS_LOCAL_EMULATOR=true")
	p := startConnect(t, repoRoot, env, nil, "--log.level", "trace", "-c", shippedConfig)
	p.waitLines(1, 2*time.Minute, "Failed to connect to braze_currents", "connection refused")
	// The README: /ready answers 200 only while the input is connected too.
	if code, body := httpGet(t, "http://"+admin+"/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready answered %d while the input cannot reach its bucket: %s", code, body)
	}
	if logs := p.logs(); strings.Contains(logs, "never-print-me") {
		t.Fatalf("the SAS token's signature was logged:\n%s", grepLines(logs, "never-print-me"))
	}
}

// TestURLSecretsNeverEchoed runs `connect echo` on a config whose bucket,
// queue and Segment endpoint URLs carry credentials, as a user:password, a
// token for a user or a signature in the query, literally or from the
// environment: echo prints none of them.
func TestURLSecretsNeverEchoed(t *testing.T) {
	parallelCPU(t)
	secrets := map[string]string{ // field: URL, each with a secret of its own
		"braze_currents url":           "azblob://currents?sv=2022-11-02&sig=input-sig-never-echo",
		"braze_currents notifications": "gcppubsubv2://acme/created?token=notify-token-never-echo",
		"queue input url":              "nats://queue-user-token-never-echo@nats.example:4222/subject",
		"queue output url":             "amqp://guest:queue-out-pass-never-echo@rabbit.example:5672/q",
		"bucket output url":            "s3://AKIAEXAMPLE:bucket-out-secret-never-echo@dead-letters?region=eu-west-1",
		"segment endpoint":             "https://proxy.example/?api_key=segment-endpoint-never-echo",
	}
	config := `
input:
  broker:
    inputs:
      - braze_currents:
          url: "${CURRENTS_URL}"
          notifications: "` + secrets["braze_currents notifications"] + `"
      - queue:
          url: "` + secrets["queue input url"] + `"
output:
  broker:
    outputs:
      - queue:
          url: "${QUEUE_OUT_URL}"
      - bucket:
          url: "` + secrets["bucket output url"] + `"
          path: 'dead/${! uuid_v4() }.jsonl'
      - segment:
          write_key: "${SEGMENT_WRITE_KEY}"
          endpoint: "${SEGMENT_ENDPOINT}"
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"CURRENTS_URL=" + secrets["braze_currents url"], "QUEUE_OUT_URL=" + secrets["queue output url"],
		"SEGMENT_WRITE_KEY=" + e2eWriteKey, "SEGMENT_ENDPOINT=" + secrets["segment endpoint"]}
	echo, errOut, err := runSplit(t, dir, env, "echo", "c.yaml")
	if err != nil {
		t.Fatalf("echo: %v\n%s", err, errOut)
	}
	if !strings.Contains(echo, "braze_currents:") || !strings.Contains(echo, "bucket:") {
		t.Fatalf("echo printed no pipeline:\n%s", echo)
	}
	for field, u := range secrets {
		if secret := regexp.MustCompile(`[a-z-]+never-echo`).FindString(u); strings.Contains(echo, secret) {
			t.Errorf("echo printed the secret of %s, %s:\n%s", field, secret, grepLines(echo, secret))
		}
	}
}

// TestEndpointQuerySecretsNeverPrinted starts the shipped pipeline with a
// proxy's SEGMENT_ENDPOINT that carries its token in the query: the start
// warning (an endpoint ending in /v1) and the refusal of one that is not
// http(s) name the parameter with its value written xxxxx.
func TestEndpointQuerySecretsNeverPrinted(t *testing.T) {
	parallelCPU(t)
	for endpoint, want := range map[string]string{
		"http://127.0.0.1:9/v1?token=endpoint-token-never-print": "endpoint http://127.0.0.1:9/v1?token=xxxxx ends in /v1",
		"ftp://proxy.example/?api_key=endpoint-key-never-print":  "endpoint ftp://proxy.example/?api_key=xxxxx is not an http:// or https:// URL",
	} {
		env := []string{"CURRENTS_URL=file://" + t.TempDir(), "CURRENTS_WATCH=false", "SEGMENT_WRITE_KEY=" + e2eWriteKey,
			"SEGMENT_ENDPOINT=" + endpoint, "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl"),
			"CONNECT_HTTP_ADDRESS=127.0.0.1:0"}
		out, _ := runConnect(t, repoRoot, env, "--log.level", "trace", "-c", shippedConfig)
		if !strings.Contains(out, want) || strings.Contains(out, "never-print") {
			t.Errorf("%s: want %q and no secret in the output:\n%s", endpoint, want, lastLines(out, 10))
		}
	}
}

// TestUnparsableURLSecretsNeverPrinted starts the shipped pipelines with a
// bucket or subscription URL that does not parse (a password with a bare %
// or a reserved character, as pasted): the refusal names the setting and
// why, not the URL, which Go's parse error quotes whole, password and all,
// nor the bad escape, which the parser's reason quotes (a piece of a secret).
func TestUnparsableURLSecretsNeverPrinted(t *testing.T) {
	parallelCPU(t)
	file := "file://" + t.TempDir()
	for _, c := range []struct{ config, key, value, want string }{
		{shippedConfig, "CURRENTS_URL", "s3://AKIAEXAMPLE:bucket-pass%never-print@currents?region=us-east-1", "url is not a URL: an invalid % escape"},
		{notificationsConfig, "CURRENTS_NOTIFICATIONS", "rabbit://guest:notify-pass%zznever-print@currents", "notifications is not a URL: an invalid % escape"},
	} {
		env := []string{"CURRENTS_URL=" + file, "CURRENTS_WATCH=false", "SEGMENT_WRITE_KEY=" + e2eWriteKey,
			"SEGMENT_ENDPOINT=http://127.0.0.1:9", "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl"),
			"CONNECT_HTTP_ADDRESS=127.0.0.1:0", c.key + "=" + c.value}
		out, err := runConnect(t, repoRoot, env, "--log.level", "trace", "-c", c.config)
		// The parser's reason quotes the escape's three characters: %ne, %zz.
		if err == nil || !strings.Contains(out, c.want) || strings.Contains(out, "never-print") || strings.Contains(out, "invalid URL escape") {
			t.Errorf("%s: exit %v, want a failure saying %q and no secret:\n%s", c.key, err, c.want, lastLines(out, 10))
		}
	}
}

// TestNotificationURLSecretsNeverPrinted starts the shipped notifications
// pipeline on a subscription URL whose query carries a token, which the
// driver refuses (or which has no credentials here), and on Service Bus with
// a connection string that does not parse (a shared access signature, which
// the SDK's error quotes whole): the error, retried and logged, shows
// neither secret, naming the URL's parameter with its value written xxxxx,
// whatever the parameter's name (?auth= as well as ?access_token=).
func TestNotificationURLSecretsNeverPrinted(t *testing.T) {
	parallelCPU(t)
	for _, c := range []struct{ url, env, want string }{
		{"gcppubsubv2://acme/created?access_token=notify-token-never-print", "", "access_token=xxxxx"},
		{"gcppubsubv2://acme/created?auth=notify-auth-never-print", "", "auth=xxxxx"},
		{"azuresb://currents?subscription=connect",
			"SERVICEBUS_CONNECTION_STRING=Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=ns&sig=sb-sig-never-print&se=1;EntityPath",
			"invalid connection string"},
	} {
		env := []string{"CURRENTS_URL=file://" + t.TempDir(), "SEGMENT_WRITE_KEY=" + e2eWriteKey, "CURRENTS_NOTIFICATIONS=" + c.url,
			"SEGMENT_ENDPOINT=http://127.0.0.1:9", "DEAD_LETTER_PATH=" + filepath.Join(t.TempDir(), "dead.jsonl"),
			"CONNECT_HTTP_ADDRESS=127.0.0.1:0", c.env}
		p := startConnect(t, repoRoot, env, nil, "--log.level", "trace", "-c", notificationsConfig)
		p.waitLines(1, 2*time.Minute, "Failed to connect to braze_currents")
		if logs := p.logs(); strings.Contains(logs, "never-print") || !strings.Contains(logs, c.want) {
			t.Errorf("%s: a secret was logged, or %q not:\n%s", c.url, c.want, grepLines(logs, "Failed to connect"))
		}
	}
}

// TestQueueURLUserTokenNeverPrinted runs a queue input whose URL carries a
// token as its user (NATS's token form, misplaced: the server comes from
// NATS_SERVER_URL), which the driver refuses: the error, logged at every
// attempt to connect, writes the user xxxxx, as it does a password.
func TestQueueURLUserTokenNeverPrinted(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	config := "input:\n  queue:\n    url: \"nats://user-token-never-print@nats.example:4222/subject\"\noutput:\n  drop: {}\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startConnect(t, dir, []string{"NATS_SERVER_URL=nats://127.0.0.1:9"}, nil, "--log.level", "trace", "-c", "c.yaml")
	p.waitLines(1, 2*time.Minute, "Failed to connect to queue")
	if logs := p.logs(); strings.Contains(logs, "never-print") || !strings.Contains(logs, "nats://xxxxx@nats.example:4222/subject") {
		t.Fatalf("the URL's user token was logged, or the URL not named:\n%s", grepLines(logs, "Failed to connect"))
	}
}

// TestQueueURLQueryValuesNeverPrinted runs queue inputs and outputs whose
// URLs carry secrets under names that do not look secret (?k=, ?auth=): the
// errors logged at every attempt to connect, and the refusal of a scheme
// not compiled in, name the URL with every query value written xxxxx.
func TestQueueURLQueryValuesNeverPrinted(t *testing.T) {
	parallelCPU(t)
	dir := t.TempDir()
	const noHTTP = "http:\n  enabled: false\n" // the two run at once
	configs := map[string]string{
		"connect.yaml": noHTTP + "input:\n  queue:\n    url: \"nats://subject?k=in-key-never-print\"\n" +
			"output:\n  queue:\n    url: \"nats://subject?auth=out-auth-never-print\"\n",
		"scheme.yaml": noHTTP + "input:\n  queue:\n    url: \"pulsar://host/subject?auth=scheme-auth-never-print\"\noutput:\n  drop: {}\n",
	}
	for name, config := range configs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"NATS_SERVER_URL=nats://127.0.0.1:9"}
	p := startConnect(t, dir, env, nil, "--log.level", "trace", "-c", "connect.yaml")
	p.waitLines(2, 2*time.Minute, "Failed to connect to queue")
	logs := p.logs()
	for _, want := range []string{"nats://subject?k=xxxxx", "nats://subject?auth=xxxxx"} {
		if strings.Contains(logs, "never-print") || !strings.Contains(logs, want) {
			t.Errorf("a query value was logged, or %s not named:\n%s", want, grepLines(logs, "Failed to connect", "never-print"))
		}
	}
	out, err := runConnect(t, dir, env, "--log.level", "trace", "-c", "scheme.yaml")
	if want := "pulsar://host/subject?auth=xxxxx"; err == nil || strings.Contains(out, "never-print") || !strings.Contains(out, want) {
		t.Errorf("exit %v, want a refusal naming %s and no secret:\n%s", err, want, lastLines(out, 10))
	}
}
