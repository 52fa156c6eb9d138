package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/deadletter"
	"github.com/currents-connect/currents-connect/tests/segmentapi"
	"github.com/currents-connect/currents-connect/tests/selfsigned"
	"github.com/currents-connect/currents-connect/tests/silentfront"
)

// TestFaultStormOverTLS runs the shipped pipeline against Segment as
// production reaches it: over HTTPS, with the stand-in's certificate trusted
// through SSL_CERT_FILE (as a proxy's own CA would be), through a storm of
// 503s, 429s with Retry-After and dropped connections. Every event arrives,
// every request went over HTTP/1.1 (the output's own client, which offers
// no HTTP/2), and connections are kept alive: none is opened but by the
// output's first requests (one for each in flight) and after a dropped one.
func TestFaultStormOverTLS(t *testing.T) {
	parallelWaiting(t)
	r := newFaultRig(t, 3, 20, 76, segmentapi.WithTLS())
	srv := r.srv
	if err := srv.Storm(segmentapi.StormSpec{Fail503: 0.15, RateLimit429: 0.1, RetryAfter: time.Second, Drop: 0.05, Seed: 76}); err != nil {
		t.Fatal(err)
	}
	env := append(r.env(), trustCertOf(t, srv))
	runToEnd(t, env, append(append([]string{"run"}, quickRetries...), shippedConfig)...)
	st := srv.Stats()
	for _, kind := range []string{segmentapi.FaultStorm503, segmentapi.FaultStorm429, segmentapi.FaultStormDrop} {
		if st.Faulted[kind] == 0 {
			t.Errorf("the storm served no %s: %+v", kind, st)
		}
	}
	if st.Requests == 0 || st.HTTP2Requests != 0 {
		t.Errorf("%d of %d requests over HTTP/2, want none", st.HTTP2Requests, st.Requests)
	}
	drops := st.Faulted[segmentapi.FaultStormDrop]
	if st.ConnectionsOpened > 8+drops { // the output's max_requests_in_flight
		t.Errorf("%d connections for %d requests, %d of them dropped: connections are kept alive", st.ConnectionsOpened, st.Requests, drops)
	}
	t.Logf("%d requests on %d connections, faults %v", st.Requests, st.ConnectionsOpened, st.Faulted)
	if err := srv.Storm(segmentapi.StormSpec{}); err != nil {
		t.Fatal(err)
	}
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// proxiedHost is the endpoint's host in the proxy tests: a .invalid name,
// which no resolver knows, so only the proxy reaches it.
const proxiedHost = "segment.invalid"

// TestSegmentThroughAnOutboundProxy: with HTTP_PROXY set, as any Go program
// reads it, the output's requests go through the proxy, here to an endpoint
// that only the proxy reaches. Loopback addresses bypass a proxy in Go, so
// the bucket is read directly.
func TestSegmentThroughAnOutboundProxy(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 1, 10, 77)
	proxy := startRecordingProxy(t, r.srv.URL(), nil)
	env := append(r.env(), "SEGMENT_ENDPOINT=http://"+proxiedHost, "HTTP_PROXY="+proxy.url, "NO_PROXY=")
	runToEnd(t, env)
	if n := len(proxy.log()); n == 0 {
		t.Fatal("no request went through the proxy")
	}
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// TestSegmentOverHTTP2ThroughAnHTTPSProxy: with HTTPS_PROXY set, the
// output's requests to an https endpoint go by net/http's transport, which
// tunnels through the proxy (CONNECT) and speaks HTTP/2 with the endpoint
// inside the tunnel, as a corporate proxy carries Segment's traffic.
func TestSegmentOverHTTP2ThroughAnHTTPSProxy(t *testing.T) {
	parallelCPU(t)
	r := newFaultRig(t, 1, 10, 79, proxiedTLS(t))
	_, target, _ := strings.Cut(r.srv.URL(), "://")
	env, proxy := viaHTTPSProxy(t, r.env(), r.srv, target)
	runToEnd(t, env)
	if proxy.tunnels() == 0 {
		t.Fatal("no request went through the proxy's tunnel")
	}
	checkAllHTTP2(t, r.srv)
	r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
}

// proxiedTLS serves the stand-in over HTTPS under a certificate that also
// covers proxiedHost, the name the output verifies through a proxy.
func proxiedTLS(t *testing.T) segmentapi.Option {
	t.Helper()
	cert, err := selfsigned.NewFor(proxiedHost)
	if err != nil {
		t.Fatal(err)
	}
	return segmentapi.WithTLSCert(cert.CertPEM, cert.KeyPEM)
}

// viaHTTPSProxy is env with the output sending to https://proxiedHost
// through a CONNECT proxy whose tunnels go to target (host:port), srv's
// certificate trusted, and that proxy.
func viaHTTPSProxy(t *testing.T, env []string, srv *segmentapi.Server, target string) ([]string, *recordingProxy) {
	t.Helper()
	proxy := startRecordingProxy(t, "https://"+target, nil)
	return append(env, "SEGMENT_ENDPOINT=https://"+proxiedHost, "HTTPS_PROXY="+proxy.url, "NO_PROXY=", trustCertOf(t, srv)), proxy
}

// checkAllHTTP2 checks that srv took requests, every one over HTTP/2.
func checkAllHTTP2(t *testing.T, srv *segmentapi.Server) {
	t.Helper()
	if st := srv.Stats(); st.Requests == 0 || st.HTTP2Requests != st.Requests {
		t.Errorf("%d of %d requests over HTTP/2, want all", st.HTTP2Requests, st.Requests)
	}
}

// TestSegmentOverAConnectionGoneSilent: the connection carrying the output's
// requests goes silent mid-run (a NAT or load balancer that forgot it:
// established, but nothing comes back), as the stand-in answers its third
// request. The requests on it time out, and the output must send them again
// on a new connection, not wait on the silent one for ever: a timed-out
// request's connection is closed, over TLS as over plain HTTP. Through an
// HTTPS proxy (HTTP2Proxy: the front between the proxy and the stand-in,
// the tunnel gone silent) one HTTP/2 connection carries every request, and
// a timed-out request only resets its stream: the transport's pings close
// the connection.
func TestSegmentOverAConnectionGoneSilent(t *testing.T) {
	parallelCPU(t)
	for _, via := range []string{"TLS", "plain", "HTTP2Proxy"} {
		t.Run(via, func(t *testing.T) {
			var opts []segmentapi.Option
			switch via {
			case "TLS":
				opts = append(opts, segmentapi.WithTLS())
			case "HTTP2Proxy":
				opts = append(opts, proxiedTLS(t))
			}
			r := newFaultRig(t, 2, 20, 78, opts...)
			srv := r.srv
			scheme, target, _ := strings.Cut(srv.URL(), "://")
			front := silentfront.Start(t, target)
			var seen atomic.Int64
			srv.OnRequest(func(*http.Request, []segmentapi.Call) {
				if seen.Add(1) == 3 {
					front.Silence()
				}
			})
			env := append(r.env(), "SEGMENT_ENDPOINT="+scheme+"://"+front.Addr())
			var proxy *recordingProxy
			switch via {
			case "TLS":
				env = append(env, trustCertOf(t, srv))
			case "HTTP2Proxy":
				env, proxy = viaHTTPSProxy(t, env, srv, front.Addr())
			}
			runToEnd(t, env, append(append([]string{"run", "--set", "output.fallback.0.reject_errored.segment.request_timeout=2s"},
				quickRetries...), shippedConfig)...)
			if front.Silenced() == 0 {
				t.Fatal("no connection went silent")
			}
			st := srv.Stats()
			t.Logf("%d connections silenced, %d opened through the front, %d requests (%d over HTTP/2)",
				front.Silenced(), front.Opened(), st.Requests, st.HTTP2Requests)
			if proxy != nil {
				checkAllHTTP2(t, srv)
				t.Logf("%d tunnels through the proxy", proxy.tunnels())
			}
			r.checkEnd(env, deadletter.Read(t, envValue(env, "DEAD_LETTER_PATH"), false), true)
		})
	}
}

// trustCertOf is the environment setting that makes the binary trust the
// stand-in's certificate (WithTLS), as a proxy's CA would be trusted.
func trustCertOf(t *testing.T, srv *segmentapi.Server) string {
	t.Helper()
	cert := filepath.Join(t.TempDir(), "segment.pem")
	if err := os.WriteFile(cert, srv.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return "SSL_CERT_FILE=" + cert
}
