package brazecurrents

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// postEncoded POSTs body with the token and Content-Encoding enc.
func postEncoded(t *testing.T, url, enc string, body []byte) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Encoding", enc)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return reply{res.StatusCode, res.Header, string(data)}
}

func gzipped(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, r); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHTTPInputContentEncoding: a gzip body is decompressed and its events
// delivered (it was answered 400 "not JSON", which Braze answers by dropping
// the events); a gzip bomb is refused 413 once max_body_size was
// decompressed; an encoding the input cannot read gets 415 naming it,
// rather than a 400 blaming the JSON.
func TestHTTPInputContentEncoding(t *testing.T) {
	in, url := startHTTPInput(t, "max_body_size: 64KiB\nmax_buffered_size: 1MiB")
	answer := make(chan reply, 1)
	go func() {
		answer <- postEncoded(t, url, "gzip", gzipped(t, strings.NewReader(`{"events": [`+testEvent+`, `+testEvent+`]}`)))
	}()
	read := make(chan service.MessageBatch, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if batch, ack, err := in.ReadBatch(ctx); err == nil {
			read <- batch
			_ = ack(context.Background(), nil)
		}
	}()
	select {
	case r := <-answer:
		t.Fatalf("gzip body answered %d %q before its events were handed over", r.status, r.body)
	case batch := <-read:
		if len(batch) != 2 {
			t.Fatalf("%d events from a gzip body, want 2", len(batch))
		}
		if v, _ := batch[0].AsStructured(); v.(map[string]any)["email_address"] != "a@example.com" {
			t.Fatalf("record %v", v)
		}
	}
	if r := <-answer; r.status != http.StatusOK {
		t.Fatalf("gzip body: %d %q", r.status, r.body)
	}

	bomb := gzipped(t, io.LimitReader(repeatByte(' '), 64<<20))
	if r := postEncoded(t, url, "gzip", bomb); r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.body, "decompressed") {
		t.Fatalf("a %d-byte gzip of 64 MiB: %d %q, want 413 saying decompressed", len(bomb), r.status, r.body)
	}
	if r := postEncoded(t, url, "gzip", []byte(`{"events": []}`)); r.status != http.StatusBadRequest || !strings.Contains(r.body, "gzip") {
		t.Fatalf("plain JSON labelled gzip: %d %q, want 400 naming gzip", r.status, r.body)
	}
	whole := gzipped(t, strings.NewReader(`{"events": [`+testEvent+`]}`))
	if r := postEncoded(t, url, "gzip", whole[:len(whole)-6]); r.status != http.StatusBadRequest || !strings.Contains(r.body, "cut short") {
		t.Fatalf("a gzip body cut short: %d %q, want 400 saying so", r.status, r.body)
	}
	if r := postEncoded(t, url, "br", []byte("x")); r.status != http.StatusUnsupportedMediaType || !strings.Contains(r.body, `"br"`) {
		t.Fatalf("Content-Encoding br: %d %q, want 415 naming it", r.status, r.body)
	}
	if r := postEncoded(t, url, "identity", []byte(`{"events": []}`)); r.status != http.StatusOK {
		t.Fatalf("Content-Encoding identity: %d %q", r.status, r.body)
	}
}

// repeatByte is an endless stream of one byte.
type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
