package segmentapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
	"github.com/currents-connect/currents-connect/tests/selfsigned"
)

// runCommand starts the command in-process, as main does, and returns the
// URL from its first stdout line.
func runCommand(t *testing.T, args ...string) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := segmentapi.RunCommand(ctx, args, stdout, io.Discard)
		stdout.Close() // a command that fails fails the read, not hangs it
		done <- err
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading the first line: %v (command: %v)", err, <-done)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") && !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("first line = %q, want listening http(s)://127.0.0.1:PORT", line)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("command did not stop")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return url, stop
}

// control calls the control API and decodes its JSON answer into v.
func control(t *testing.T, c *http.Client, method, url, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func TestCommandControlAPI(t *testing.T) {
	url, stop := runCommand(t, "-addr", "127.0.0.1:0", "-write-key", writeKey)
	seg, ctl := newClient(t), newClient(t)

	expect(t, mustPost(t, seg, url+"/v1/batch", writeKey, tracks("c1", "c2", "c1")), http.StatusOK, "", -1)
	var st segmentapi.ControlStats
	for range 2 { // control requests must not count as Segment requests
		if code := control(t, ctl, "GET", url+"/_control/stats", "", &st); code != 200 {
			t.Fatalf("stats: %d", code)
		}
	}
	if st.Requests != 1 || st.Accepted != 3 || st.UniqueMessageIDs != 2 || st.Duplicates != 1 || st.ConnectionsOpened != 1 {
		t.Fatalf("stats %+v: want 1 request, 3 accepted, 2 unique, 1 duplicate, 1 connection", st)
	}
	var calls []map[string]any
	control(t, ctl, "GET", url+"/_control/accepted", "", &calls)
	if len(calls) != 3 || calls[2]["messageId"] != "c1" || calls[0]["event"] != "Purchased" {
		t.Fatalf("accepted = %v", calls)
	}

	faults := []struct {
		spec   string
		status int
	}{
		{`{"kind":"fail","n":1,"status":503}`, 503},
		{`{"kind":"fail","n":1}`, 500},
		{`{"kind":"ratelimit","n":1,"retry_after_ms":1000}`, 429},
		{`{"kind":"slow","n":1,"delay_ms":1}`, 200},
	}
	for _, f := range faults {
		if code := control(t, ctl, "POST", url+"/_control/fault", f.spec, nil); code != 200 {
			t.Fatalf("fault %s: %d", f.spec, code)
		}
		a := mustPost(t, seg, url+"/v1/batch", writeKey, tracks("c3"))
		if a.status != f.status {
			t.Fatalf("after %s: status %d, want %d", f.spec, a.status, f.status)
		}
	}
	control(t, ctl, "POST", url+"/_control/fault", `{"kind":"drop","n":1}`, nil)
	if _, err := post(seg, url+"/v1/batch", writeKey, tracks("c4")); err == nil {
		t.Fatal("drop fault: request answered")
	}
	control(t, ctl, "POST", url+"/_control/fault", `{"kind":"outage503","on":true}`, nil)
	expect(t, mustPost(t, seg, url+"/v1/batch", writeKey, tracks("c5")), 503, "", -1)
	if code := control(t, ctl, "GET", url+"/_control/stats", "", &st); code != 200 {
		t.Fatalf("control API down during an outage: %d", code)
	}
	control(t, ctl, "POST", url+"/_control/fault", `{"kind":"outage503","on":false}`, nil)
	want := map[string]int{"fail": 2, "ratelimit": 1, "slow": 1, "drop": 1, "outage503": 1}
	for k, n := range want {
		if st.Faulted[k] != n {
			t.Fatalf("faulted = %v, want %v", st.Faulted, want)
		}
	}

	for _, bad := range []string{`{"kind":"explode","n":1}`, `{"kind":"fail","n":1,"stauts":503}`, `{"kind":"fail","n":-1}`, `nope`} {
		var e map[string]any
		if code := control(t, ctl, "POST", url+"/_control/fault", bad, &e); code != 400 || e["error"] == "" {
			t.Fatalf("fault %s: %d %v, want 400 with an error", bad, code, e)
		}
	}
	if code := control(t, ctl, "GET", url+"/_control/reset", "", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET reset: %d, want 405", code)
	}

	control(t, ctl, "POST", url+"/_control/reset", "", nil)
	control(t, ctl, "GET", url+"/_control/stats", "", &st)
	control(t, ctl, "GET", url+"/_control/accepted", "", &calls)
	if st.Requests != 0 || st.Accepted != 0 || st.UniqueMessageIDs != 0 || calls == nil || len(calls) != 0 {
		t.Fatalf("after reset: stats %+v, accepted %v (want [])", st, calls)
	}

	if err := stop(); err != nil {
		t.Fatalf("command returned %v", err)
	}
	if _, err := post(seg, url+"/v1/batch", writeKey, tracks("c6")); err == nil {
		t.Fatal("server still answering after the command stopped")
	}
}

// TestCommandServesTLS: with -tls-cert and -tls-key the command serves
// HTTPS under that certificate, HTTP/2 to a client that offers it, as
// WithTLS does; a key without its certificate is an error.
func TestCommandServesTLS(t *testing.T) {
	cert, err := selfsigned.New()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := cert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := segmentapi.RunCommand(context.Background(), []string{"-write-key", writeKey, "-tls-key", keyFile}, io.Discard, io.Discard); err == nil {
		t.Fatal("-tls-key without -tls-cert accepted")
	}

	url, _ := runCommand(t, "-write-key", writeKey, "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("URL %s, want https://", url)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CertPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	expect(t, mustPost(t, c, url+"/v1/batch", writeKey, tracks("t1")), http.StatusOK, "", -1)
	var st segmentapi.ControlStats
	control(t, c, "GET", url+"/_control/stats", "", &st)
	if st.Requests != 1 || st.HTTP2Requests != 1 || st.UniqueMessageIDs != 1 {
		t.Fatalf("stats %+v: want 1 request, over HTTP/2, 1 call", st)
	}
}

func TestCommandFlags(t *testing.T) {
	ctx := context.Background()
	if err := segmentapi.RunCommand(ctx, []string{"-addr", "127.0.0.1:0"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "write-key") {
		t.Fatalf("missing -write-key: %v", err)
	}
	if err := segmentapi.RunCommand(ctx, []string{"-bogus"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if err := segmentapi.RunCommand(ctx, []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}

	// Limit flags reach the server.
	url, _ := runCommand(t, "-write-key", writeKey, "-max-calls", "1")
	c := newClient(t)
	expect(t, mustPost(t, c, url+"/v1/batch", writeKey, tracks("a", "b")), http.StatusOK, "", -1)
	var st segmentapi.ControlStats
	control(t, c, "GET", url+"/_control/stats", "", &st)
	if st.SilentlyDropped != 2 || st.ConnectionsOpened != 1 {
		t.Fatalf("stats %+v: want 2 dropped, and the shared connection counted once", st)
	}
}
