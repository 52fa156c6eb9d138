package brazecurrents

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/selfsigned"
)

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

// TestHTTPInputRefusesAnUnloadableCertificate: a key pair that cannot be
// loaded fails Connect, naming the files and none of their contents, before
// anything listens; otherwise the input would report itself connected (and
// /ready 200) while its port served nothing.
func TestHTTPInputRefusesAnUnloadableCertificate(t *testing.T) {
	certFile, keyFile, _ := selfSignedCert(t)
	missing := filepath.Join(t.TempDir(), "missing-cert.pem")
	for _, c := range []struct{ cert, key string }{
		{missing, keyFile},
		{keyFile, certFile}, // swapped: both readable PEM, neither what it should be
	} {
		parsed, err := httpInputSpec().ParseYAML("address: 127.0.0.1:0\ntoken: tok\ncert_file: "+c.cert+"\nkey_file: "+c.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		in, err := httpInputFromParsed(parsed, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		err = in.Connect(context.Background())
		if err == nil {
			_ = in.Close(context.Background())
			t.Fatalf("cert_file %s, key_file %s: Connect succeeded", c.cert, c.key)
		}
		if !strings.Contains(err.Error(), c.cert) || !strings.Contains(err.Error(), c.key) || strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("Connect error %q: want one naming %s and %s, without their contents", err, c.cert, c.key)
		}
		select {
		case addr := <-in.bound:
			t.Errorf("listening on %s after a failed Connect", addr)
		default:
		}
		if err := in.Close(context.Background()); err != nil {
			t.Errorf("Close after a failed Connect: %v", err)
		}
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, err := selfsigned.New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, cert.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, cert.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(cert.CertPEM)
	return certFile, keyFile, pool
}

// TestHTTPInputTLSReloadsARenewedCertificate: a certificate renewed in
// place is served from the next handshake. The pair was loaded once, at
// start: the old certificate was served until a restart, or until it
// expired and Braze's calls failed. A changed pair that does not load (the
// key not yet written beside its new certificate) leaves the last one
// served.
func TestHTTPInputTLSReloadsARenewedCertificate(t *testing.T) {
	certs := make([]selfsigned.Cert, 2)
	pool := x509.NewCertPool()
	for i := range certs {
		var err error
		if certs[i], err = selfsigned.New(); err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(certs[i].CertPEM)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	version := time.Now()
	write := func(path string, pem []byte) {
		t.Helper()
		if err := os.WriteFile(path, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		// Each write a version of its own, however coarse the file
		// system's clock.
		version = version.Add(time.Minute)
		if err := os.Chtimes(path, version, version); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, certs[0].CertPEM)
	write(keyFile, certs[0].KeyPEM)
	_, url := startHTTPInput(t, "cert_file: "+certFile+"\nkey_file: "+keyFile)
	// A connection per request: each is a handshake.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	served := func() []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"events": []}`))
		req.Header.Set("Authorization", "Bearer tok")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].Raw
	}
	want := func(what string, i int) {
		t.Helper()
		if !bytes.Equal(served(), certs[i].TLS.Certificate[0]) {
			t.Fatalf("%s: not serving certificate %d", what, i)
		}
	}
	want("at start", 0)
	write(certFile, certs[1].CertPEM)
	want("a new certificate beside the old key", 0)
	write(keyFile, certs[1].KeyPEM)
	want("renewed", 1)
	write(keyFile, []byte("not a key"))
	want("an unreadable key", 1)
	write(certFile, certs[0].CertPEM)
	write(keyFile, certs[0].KeyPEM)
	want("the first pair again", 0)
}
