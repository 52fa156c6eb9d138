package brazecurrents

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestHTTPInputIdleTimeoutOutlastsLoadBalancers: a keep-alive connection is
// kept idle for idle_timeout, by default longer than the 600 s Google
// Cloud's external HTTP(S) load balancer keeps its connections to a backend
// (AWS's ALB: 60 s by default). It was 2 minutes, fixed: a balancer that
// sent a request on a connection the input had just closed got an error,
// and answered Braze 502. Once idle that long, the connection is closed.
func TestHTTPInputIdleTimeoutOutlastsLoadBalancers(t *testing.T) {
	in, _ := startHTTPInput(t, "")
	if in.server.IdleTimeout <= 600*time.Second {
		t.Errorf("idle timeout %s by default, want over the 600 s of Google Cloud's load balancer", in.server.IdleTimeout)
	}

	_, url := startAckedInput(t, "idle_timeout: 50ms")
	conn := dialInput(t, url)
	// Not a wait: the server closes the connection, or the test fails here
	// rather than hang.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	body := `{"events": [` + testEvent + `]}`
	if _, err := io.WriteString(conn, "POST /currents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	res := replyOf(http.ReadResponse(r, nil))
	if res.status != http.StatusOK {
		t.Fatalf("%d %q, want 200", res.status, res.body)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("a connection left idle past idle_timeout: %v, want it closed", err)
	}
}
