package brazecurrents

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

const testEvent = `{"event_type": "users.messages.email.Open", "id": "e1", "time": 1764590400,
	"properties": {"email_address": "a@example.com"}, "user": {"external_user_id": "u1", "user_id": "b1"}}`

// startHTTPInput runs the input on a loopback port and returns its URL.
func startHTTPInput(t *testing.T, conf string) (*httpInput, string) {
	t.Helper()
	parsed, err := httpInputSpec().ParseYAML("address: 127.0.0.1:0\ntoken: tok\n"+conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := httpInputFromParsed(parsed, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(context.Background()) })
	scheme := "http"
	if in.certFile != "" {
		scheme = "https"
	}
	return in, scheme + "://" + <-in.bound + "/currents"
}

type reply struct {
	status int
	header http.Header
	body   string
}

// postAsync POSTs body with the token and delivers the reply on the channel.
func postAsync(client *http.Client, url, body string) <-chan reply {
	out := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		res, err := client.Do(req)
		if err != nil {
			out <- reply{status: -1, body: err.Error()}
			return
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		out <- reply{res.StatusCode, res.Header, string(data)}
	}()
	return out
}

func readRequest(t *testing.T, in *httpInput) (service.MessageBatch, service.AckFunc) {
	t.Helper()
	batch, ack, err := in.ReadBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return batch, ack
}

// TestHTTPInputAnswersWithTheAcknowledgement: 200 only after the batch was
// acknowledged; a nack is a 503 with Retry-After, so Braze retries.
func TestHTTPInputAnswersWithTheAcknowledgement(t *testing.T) {
	in, url := startHTTPInput(t, "retry_after: 7s")
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`, `+testEvent+`]}`)
	batch, ack := readRequest(t, in)
	if len(batch) != 2 {
		t.Fatalf("%d messages, want 2", len(batch))
	}
	select {
	case r := <-answer:
		t.Fatalf("answered %d before the acknowledgement", r.status)
	default:
	}
	v, err := batch[1].AsStructured()
	if err != nil {
		t.Fatal(err)
	}
	rec := v.(map[string]any)
	if rec["external_user_id"] != "u1" || rec["email_address"] != "a@example.com" || rec["time"] != int64(1764590400) {
		t.Fatalf("record %v", rec)
	}
	if et, _ := batch[1].MetaGet(MetaEventType); et != "users.messages.email.Open" {
		t.Fatalf("event type %q", et)
	}
	if src, _ := batch[1].MetaGet(MetaSource); !strings.HasPrefix(src, "http request 1 from 127.0.0.1:") {
		t.Fatalf("source %q", src)
	}
	if idx, _ := batch[1].MetaGetMut(MetaRecordIndex); idx != int64(1) {
		t.Fatalf("record index %v", idx)
	}
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("status %d %q after the acknowledgement", r.status, r.body)
	}

	answer = postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	_, ack = readRequest(t, in)
	_ = ack(context.Background(), errors.New("the dead letter file is not writable"))
	r := <-answer
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" || !strings.Contains(r.body, "not writable") {
		t.Fatalf("after a nack: %d, Retry-After %q, %q", r.status, r.header.Get("Retry-After"), r.body)
	}
}

// TestHTTPInputBoundsBufferedBodies: while max_buffered_size is held by
// requests in flight, another waits and then gets 503; once they are
// acknowledged, requests go through again.
func TestHTTPInputBoundsBufferedBodies(t *testing.T) {
	in, url := startHTTPInput(t, "max_body_size: 1KiB\nmax_buffered_size: 1KiB\ntimeout: 300ms")
	// Over half the budget: two cannot be held at once.
	body := `{"events": [` + testEvent + `], "padding": "` + strings.Repeat("x", 600) + `"}`
	first := postAsync(http.DefaultClient, url, body)
	_, ack := readRequest(t, in)
	// The first is answered 503 at its timeout, but its events are still in
	// the pipeline: their bytes stay held.
	if r := <-first; r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "not yet delivered") {
		t.Fatalf("unacknowledged request: %d %q", r.status, r.body)
	}
	if r := <-postAsync(http.DefaultClient, url, body); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") {
		t.Fatalf("request over the budget: %d %q", r.status, r.body)
	}
	_ = ack(context.Background(), nil)
	third := postAsync(http.DefaultClient, url, body)
	_, ack = readRequest(t, in)
	_ = ack(context.Background(), nil)
	if r := <-third; r.status != http.StatusOK {
		t.Fatalf("after the budget was released: %d %q", r.status, r.body)
	}
}

// TestHTTPInputPipelineNotReading: a pipeline that takes no events within
// the timeout gets Braze a 503, and the events are not handed over later.
func TestHTTPInputPipelineNotReading(t *testing.T) {
	in, url := startHTTPInput(t, "timeout: 200ms")
	if r := <-postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "took no events") {
		t.Fatalf("%d %q", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := in.ReadBatch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request answered 503 was still handed over: %v", err)
	}
}

// TestHTTPInputClose: a request waiting for its acknowledgement is answered
// 503 when the input closes, and reading ends.
func TestHTTPInputClose(t *testing.T) {
	in, url := startHTTPInput(t, "")
	answer := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	readRequest(t, in)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-answer; r.status != http.StatusServiceUnavailable {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if _, _, err := in.ReadBatch(context.Background()); !errors.Is(err, service.ErrEndOfInput) {
		t.Fatalf("ReadBatch after Close: %v", err)
	}
}

func TestHTTPInputRefusesMethodsAndEmptyBatches(t *testing.T) {
	_, url := startHTTPInput(t, "")
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	if r := <-postAsync(http.DefaultClient, url, `{"events": []}`); r.status != http.StatusOK {
		t.Fatalf("no events: %d %q", r.status, r.body)
	}
}

func TestHTTPInputConfigErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"token: ''", "token is empty"},
		{"token: t\npath: currents", "does not start with /"},
		{"token: t\nmax_body_size: lots", "max_body_size"},
		{"token: t\nmax_body_size: 0", "max_body_size"},
		{"token: t\nmax_body_size: 8MiB\nmax_buffered_size: 1MiB", "below max_body_size"},
		{"token: t\ncert_file: c.pem", "set both cert_file and key_file"},
		{"token: t\ntimeout: 0s", "timeout must be positive"},
	} {
		parsed, err := httpInputSpec().ParseYAML(c.conf, nil)
		if err == nil {
			_, err = httpInputFromParsed(parsed, service.MockResources())
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one saying %q", c.conf, err, c.want)
		}
	}
}

// TestHTTPInputTLS: with cert_file and key_file the input speaks HTTPS.
func TestHTTPInputTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	in, url := startHTTPInput(t, "cert_file: "+certFile+"\nkey_file: "+keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	answer := postAsync(client, url, `{"events": [`+testEvent+`]}`)
	_, ack := readRequest(t, in)
	_ = ack(context.Background(), nil)
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("over TLS: %d %q", r.status, r.body)
	}
	if r := <-postAsync(http.DefaultClient, strings.Replace(url, "https", "http", 1), "{}"); r.status == http.StatusOK {
		t.Fatal("plain HTTP accepted on the TLS port")
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
