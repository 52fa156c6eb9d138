package segment

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

// A proxy in front of Segment that sends requests to its sign-in page (a
// 302, then 200 to the GET Go's client followed it with) accepted no call:
// the calls are held, as for an endpoint without the API, and sent once the
// endpoint takes them. Following the redirect acknowledged them unsent.
func TestRedirectHoldsTheCalls(t *testing.T) {
	checkFrontHoldsTheCalls(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/signin" {
			_, _ = io.WriteString(w, "<html>Sign in</html>")
			return
		}
		http.Redirect(w, r, "/signin", http.StatusFound)
	}, "HTTP 302")
}

// A captive portal or a proxy's sign-in page that answers the POST itself,
// 200 with a web page, accepted no call: the calls are held, with an error
// that says so, and sent once the endpoint takes them.
func TestWebPageAnswerHoldsTheCalls(t *testing.T) {
	checkFrontHoldsTheCalls(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<html>Sign in to the network</html>")
	}, "HTTP 200 with a web page")
}

// A front answering 400 with a web page (nginx's "plain HTTP request was
// sent to HTTPS port" for an endpoint of http:// on port 443, a load
// balancer's error page) refuses every request, whatever its calls: the
// calls are held. Taken as Segment blaming the calls, the request was split
// down to each call, and every call went to the dead letter output.
func TestWebPage400HoldsTheCalls(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			checkFrontHoldsTheCalls(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				fmt.Fprintf(w, "<html><center><h1>%d %s</h1></center>The plain HTTP request was sent to HTTPS port</html>", status, http.StatusText(status))
			}, fmt.Sprintf("HTTP %d with a web page", status))
		})
	}
}

// checkFrontHoldsTheCalls puts front before the Segment stand-in: while it
// answers, a write is held (not connected) with an error containing want,
// and a probe does not bring the output up; once requests go through,
// Connect succeeds and the calls are delivered.
func checkFrontHoldsTheCalls(t *testing.T, front http.HandlerFunc, want string) {
	t.Helper()
	api, forward := standInBehindAFront(t)
	var fronting atomic.Bool
	fronting.Store(true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fronting.Load() {
			front(w, r)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, backoff: {initial_interval: 1ms, max_interval: 2ms}}`, testKey, proxy.URL))
	batch := trackBatch(5, 0, "x")
	if err := out.WriteBatch(context.Background(), batch); !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("write through the front: %v, want not connected (held)", err)
	}
	if down := out.s.routes.downErr(); down == nil || !strings.Contains(down.Error(), want) {
		t.Fatalf("held for %v, want an error naming %q", down, want)
	}
	if err := out.s.routes.all[0].probe(context.Background()); err == nil {
		t.Fatalf("a probe answered by the front brought the output up")
	}
	fronting.Store(false)
	if err := out.Connect(context.Background()); err != nil {
		t.Fatalf("connect once the endpoint takes calls: %v", err)
	}
	if err := out.WriteBatch(context.Background(), batch); err != nil || api.UniqueMessageIDs() != 5 {
		t.Fatalf("write once the endpoint takes calls: %v, %d accepted", err, api.UniqueMessageIDs())
	}
}

// Errors keep the first 1 KB of an answer. A key echoed across that cut (by
// a proxy echoing the request's headers) left its first part in the error,
// and so in logs and dead letters.
func TestKeyCutByTheAnswersLimitIsScrubbed(t *testing.T) {
	for name, secret := range map[string]string{
		"the key":          testKey,
		"its Basic header": base64.StdEncoding.EncodeToString([]byte(testKey + ":")),
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, strings.Repeat("x", 1016)+secret+" echoed")
		}))
		out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, srv.URL))
		batch := trackBatch(1, 0, "x")
		err := batchErrors(batch, out.WriteBatch(context.Background(), batch))[0]
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "xxxxxxxx") {
			t.Fatalf("%s: error %v, want the answer's text in it", name, err)
		}
		if strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("%s: the error holds its first 8 characters: ...%s", name, err.Error()[len(err.Error())-40:])
		}
	}
}

// 400, 413 and 422 blame the request's content: its calls are split until
// the ones at fault are found. A request refused so once, with nothing
// wrong in its halves (a proxy's lower size limit, say), is delivered in
// halves: nothing held, nothing dead-lettered.
func TestContentAnswersSplitTheRequest(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			api := segmentapi.StartT(t, testKey)
			out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, api.URL()))
			api.FailNext(1, status)
			batch := trackBatch(6, 0, "x")
			if err := out.WriteBatch(context.Background(), batch); err != nil {
				t.Fatalf("a request answered %d once: %v, want its halves delivered", status, err)
			}
			if api.UniqueMessageIDs() != 6 || api.Stats().Requests != 3 {
				t.Fatalf("%d calls accepted in %d requests, want 6 in 3 (the refused one and its halves)", api.UniqueMessageIDs(), api.Stats().Requests)
			}
		})
	}
}

// A 413 web page is a proxy's lower limit on bodies, not a front refusing
// every request: the request is split, and its halves delivered.
func TestWebPage413SplitsTheRequest(t *testing.T) {
	api, forward := standInBehindAFront(t)
	var refused atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !refused.Swap(true) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = io.WriteString(w, "<html><h1>413 Request Entity Too Large</h1></html>")
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, proxy.URL))
	if err := out.WriteBatch(context.Background(), trackBatch(6, 0, "x")); err != nil || api.UniqueMessageIDs() != 6 {
		t.Fatalf("a request answered by a proxy's 413 page: %v, %d calls accepted; want its halves delivered", err, api.UniqueMessageIDs())
	}
}

// Calls waiting for a request slot when a request finds the key refused are
// held with it (not connected), never acknowledged unsent.
func TestRefusedKeyHoldsTheCallsWaitingForASlot(t *testing.T) {
	api := segmentapi.StartT(t, testKey)
	api.RevokeKey(true)
	release := make(chan struct{})
	api.OnRequest(func(*http.Request, []segmentapi.Call) { <-release })
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s, max_requests_in_flight: 1}`, testKey, api.URL()))
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- out.WriteBatch(context.Background(), trackBatch(2, 0, "x")) }()
	go func() { second <- out.WriteBatch(context.Background(), trackBatch(2, 2, "x")) }()
	// One request is in flight (held in the stand-in), the other batch's
	// calls queue behind it.
	d := out.s.routes.all[0]
	for waited := 0; ; waited++ {
		d.mu.Lock()
		queued := len(d.queue)
		d.mu.Unlock()
		if queued == 2 {
			break
		}
		if waited == 3000 {
			t.Fatalf("%d calls queued, want the second batch's 2", queued)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not timing a result
	}
	close(release)
	for _, res := range []chan error{first, second} {
		if err := <-res; !errors.Is(err, service.ErrNotConnected) {
			t.Errorf("a batch under a refused key: %v, want not connected (held)", err)
		}
	}
}

// A request still unanswered when the output closes hands its calls back
// (shutdown), so that the input delivers them again: they were not accepted.
// The dispatcher's decision is checked alone, as WriteBatch's own context
// ends with the close too and may answer first.
func TestCloseDuringARequestHandsItsCallsBack(t *testing.T) {
	api := segmentapi.StartT(t, testKey)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	api.OnRequest(func(*http.Request, []segmentapi.Call) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	t.Cleanup(func() { close(release) })
	out := newTestOutput(t, fmt.Sprintf(`{write_key: %s, endpoint: %s}`, testKey, api.URL()))
	result := make(chan error, 1)
	go func() {
		_, err := out.s.routes.all[0].try(out.s.requestBody(nil, nil))
		result <- err
	}()
	<-entered
	if err := out.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ce *CallError
	if err := <-result; !errors.As(err, &ce) || ce.Cause != CauseShutdown {
		t.Fatalf("a request cut by the close: %v, want the calls handed back (shutdown)", err)
	}
}
