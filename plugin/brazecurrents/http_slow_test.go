package brazecurrents

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestHTTPInputSlowBodyIsRetried: a body still not fully sent when the
// timeout passes (a slow link, not a bad request) is answered 503 with
// Retry-After. Braze treats a 400 as a malformed event: it splits the batch
// into single events and drops for good each one answered 400 again, so a
// 400 here lost the events of every request that met a slow link twice.
func TestHTTPInputSlowBodyIsRetried(t *testing.T) {
	_, url := startHTTPInput(t, "timeout: 300ms")
	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/currents"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"events": [` + testEvent + `]}`
	// Half the declared body, then nothing: the server's read deadline ends
	// the wait, not this test.
	if _, err := conn.Write([]byte("POST /currents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body[:len(body)/2])); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("a body cut short by the timeout: %d (Retry-After %q), want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}
