package brazecurrents

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestHTTPInputStopRefusesNewRequestsAtOnce stops the input as Connect's
// graceful stop does: the context of ReadBatch is cancelled while Connect
// is busy with a batch (its pipeline full), and Close comes only once that
// batch was acknowledged (the drain). A request that arrives or waits for
// its events to be taken meanwhile is answered 503 at once, with
// Retry-After, saying the process shuts down: it was held until Close or
// its timeout, and Braze waited that long for nothing. The request whose
// events were taken is still answered 200 once the drain delivers them.
func TestHTTPInputStopRefusesNewRequestsAtOnce(t *testing.T) {
	// A timeout far beyond the test's steps: a request answered by it is
	// answered "within 20s", not "shutting down".
	in, url := startHTTPInput(t, "retry_after: 7s\ntimeout: 20s")
	reading, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	taken := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	_, ack, err := in.ReadBatch(reading)
	if err != nil {
		t.Fatal(err)
	}
	// Connect, busy with that batch, reads no more: the next request waits
	// for its events to be taken.
	waiting := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	for in.counter.Load() < 2 { // the second is being served
		runtime.Gosched()
	}
	stopStream()
	<-in.stopping
	late := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	for name, answer := range map[string]<-chan reply{"a request arriving during the stop": late, "a request waiting for its events to be taken": waiting} {
		r := <-answer
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" || !strings.Contains(r.body, "shutting down") {
			t.Errorf("%s: %d (Retry-After %q) %q, want 503 at once saying it is shutting down", name, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	// The drain delivers the events taken before the stop.
	_ = ack(context.Background(), nil)
	if r := <-taken; r.status != http.StatusOK {
		t.Fatalf("the request whose events were taken before the stop, delivered by the drain: %d %q, want 200", r.status, r.body)
	}
}

// TestHTTPInputStreamStopRefusesNewRequestsAtOnce: the same through a
// stream of Connect's, stopped gracefully while its output holds a
// request's events: the input learns of the stop from Connect itself (the
// context it passes ReadBatch), a request arriving then is answered 503 at
// once, before the drain ends, and the held request gets its 200 once the
// output delivers its events.
func TestHTTPInputStreamStopRefusesNewRequestsAtOnce(t *testing.T) {
	s, url, deliveries, logs := runHTTPStream(t)
	taken := postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`)
	held := <-deliveries
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	for !strings.Contains(logs.String(), "Stopping: new requests are answered 503 at once") {
		runtime.Gosched()
	}
	if r := <-postAsync(http.DefaultClient, url, `{"events": [`+testEvent+`]}`); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "shutting down") {
		t.Errorf("a request arriving during the stop: %d %q, want 503 at once saying it is shutting down", r.status, r.body)
	}
	held.ack <- nil
	if r := <-taken; r.status != http.StatusOK {
		t.Errorf("the request whose events the output held at the stop, then delivered: %d %q, want 200", r.status, r.body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
