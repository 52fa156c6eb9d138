package segmentapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// TestTLSServesHTTP2: WithTLS serves HTTPS under a certificate a client
// trusts through CertPEM, HTTP/2 when the client offers it (as Go's default
// transport does), on one connection for concurrent requests; a dropped
// answer resets its stream only, as HTTP/2 has no connection to hijack.
func TestTLSServesHTTP2(t *testing.T) {
	s := segmentapi.StartT(t, writeKey, segmentapi.WithTLS())
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL())
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(s.CertPEM()) {
		t.Fatal("CertPEM holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// One request first, so that the others find its connection.
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("m0")), http.StatusOK, "", -1)
	var wg sync.WaitGroup
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		wg.Go(func() {
			if a, err := post(c, s.URL()+"/v1/batch", writeKey, tracks(id)); err != nil || a.status != http.StatusOK {
				t.Errorf("%s: %v %d", id, err, a.status)
			}
		})
	}
	wg.Wait()
	s.DropNext(1)
	if _, err := post(c, s.URL()+"/v1/batch", writeKey, tracks("m5")); err == nil {
		t.Fatal("a dropped request got an answer")
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("m6")), http.StatusOK, "", -1)
	st := s.Stats()
	if st.Requests != 7 || st.HTTP2Requests != 7 || st.Accepted != 6 || st.ConnectionsOpened != 1 || st.Faulted[segmentapi.FaultDrop] != 1 {
		t.Errorf("stats = %+v, want 7 requests over HTTP/2 on one connection, 6 calls accepted, 1 dropped", st)
	}

	// Without the certificate the handshake fails.
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	if _, err := post(plain, s.URL()+"/v1/batch", writeKey, tracks("m7")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the certificate: %v", err)
	}
}
