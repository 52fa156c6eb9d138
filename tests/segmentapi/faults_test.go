package segmentapi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/currents-connect/currents-connect/tests/segmentapi"
)

func TestFailNext(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL() + "/v1/batch"
	s.FailNext(2, http.StatusServiceUnavailable)
	expect(t, mustPost(t, c, url, writeKey, tracks("f1")), 503, "injected", -1)
	expect(t, mustPost(t, c, url, writeKey, tracks("f1")), 503, "injected", -1)
	expect(t, mustPost(t, c, url, writeKey, tracks("f1")), http.StatusOK, "", -1)
	s.FailNext(1, http.StatusBadRequest)
	expect(t, mustPost(t, c, url, writeKey, tracks("f2")), 400, "injected", -1)
	st := s.Stats()
	if st.Faulted[segmentapi.FaultFail] != 3 || st.Accepted != 1 || s.Count("f1") != 1 || st.Rejected400 != 0 {
		t.Fatalf("stats %+v", st)
	}
	s.FailNext(5, 500)
	s.ClearFaults()
	expect(t, mustPost(t, c, url, writeKey, tracks("f3")), http.StatusOK, "", -1)
}

// Queued faults are consumed exactly once each under concurrent traffic.
func TestFailNextConcurrent(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.FailNext(10, http.StatusInternalServerError)
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Go(func() {
			a, err := post(c, s.URL()+"/v1/batch", writeKey, tracks(fmt.Sprint("c", i)))
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- a.status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[500] != 10 || count[200] != 30 || s.UniqueMessageIDs() != 30 {
		t.Fatalf("statuses %v, unique %d; want 10x500, 30x200", count, s.UniqueMessageIDs())
	}
}

func TestRateLimitNext(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.RateLimitNext(2, 1500*time.Millisecond)
	for range 2 {
		a := mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("r1"))
		expect(t, a, http.StatusTooManyRequests, "rate limited", -1)
		if got := a.header.Get("Retry-After"); got != "2" {
			t.Fatalf("Retry-After = %q, want 2 (ceil of 1.5s)", got)
		}
		// Segment documents both headers on a 429, in seconds.
		if got := a.header.Get("X-RateLimit-Reset"); got != "2" {
			t.Fatalf("X-RateLimit-Reset = %q, want 2", got)
		}
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("r1")), http.StatusOK, "", -1)
	if st := s.Stats(); st.Faulted[segmentapi.FaultRateLimit] != 2 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSlowNext(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	const delay = 100 * time.Millisecond
	s.SlowNext(1, delay)
	began := time.Now()
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("s1")), http.StatusOK, "", -1)
	if took := time.Since(began); took < delay {
		t.Fatalf("answered after %v, want at least %v", took, delay)
	}
	if s.Count("s1") != 1 || s.Stats().Faulted[segmentapi.FaultSlow] != 1 {
		t.Fatalf("slow request not processed normally: %+v", s.Stats())
	}
}

// hangUpConn reports its first Write: the request bytes are then in the
// kernel, so the server will read them even after the client hangs up.
type hangUpConn struct {
	net.Conn
	once  sync.Once
	wrote func()
}

func (c *hangUpConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.once.Do(c.wrote)
	return n, err
}

// A slow answer is abandoned when the client goes away, instead of holding
// the handler for the whole delay.
func TestSlowNextRespectsCancel(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	handled := make(chan error, 1)
	s.OnRequest(func(r *http.Request, calls []segmentapi.Call) { handled <- r.Context().Err() })
	s.SlowNext(1, time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var d net.Dialer
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &hangUpConn{Conn: conn, wrote: cancel}, nil
		},
	}}
	if _, err := post(c, s.URL()+"/v1/batch", writeKey, tracks("s1"), func(r *http.Request) {
		*r = *r.WithContext(ctx)
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	select {
	case err := <-handled:
		if err == nil {
			t.Fatal("handler finished with a live context")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("handler still waiting after the client left: %+v", s.Stats())
	}
	if s.Count("s1") != 0 || s.Stats().Faulted[segmentapi.FaultSlow] != 1 {
		t.Fatalf("abandoned request: stats %+v, accepted %v", s.Stats(), s.Accepted())
	}
}

func TestDropNext(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.DropNext(1)
	if a, err := post(c, s.URL()+"/v1/batch", writeKey, tracks("d1")); err == nil {
		t.Fatalf("dropped request answered %d", a.status)
	}
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("d2")), http.StatusOK, "", -1)
	if st := s.Stats(); st.Faulted[segmentapi.FaultDrop] != 1 || s.Count("d1") != 0 || s.Count("d2") != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDownUp(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	url := s.URL()
	expect(t, mustPost(t, c, url+"/v1/batch", writeKey, tracks("u1")), http.StatusOK, "", -1)

	// A request in flight during Down loses its connection.
	entered, release := make(chan struct{}), make(chan struct{})
	s.OnRequest(func(*http.Request, []segmentapi.Call) {
		entered <- struct{}{}
		<-release
	})
	inflight := make(chan error, 1)
	go func() {
		_, err := post(c, url+"/v1/batch", writeKey, tracks("u2"))
		inflight <- err
	}()
	<-entered
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if err := <-inflight; err == nil {
		t.Fatal("in-flight request survived Down")
	}
	close(release)
	s.OnRequest(nil)

	if _, err := post(c, url+"/v1/batch", writeKey, tracks("u3")); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("while down: err = %v, want connection refused", err)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("URL changed from %s to %s", url, s.URL())
	}
	expect(t, mustPost(t, c, url+"/v1/batch", writeKey, tracks("u4")), http.StatusOK, "", -1)
	if s.Count("u1") != 1 || s.Count("u4") != 1 || s.Count("u3") != 0 {
		t.Fatalf("accepted %v", s.Accepted())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Up(); err == nil {
		t.Fatal("Up after Close succeeded")
	}
}

func TestOutage503(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.FailNext(1, http.StatusBadGateway)
	s.Outage503(true)
	for range 3 {
		expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("o1")), 503, "outage503", -1)
	}
	s.Outage503(false)
	// The queued fault waited out the outage.
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("o1")), http.StatusBadGateway, "", -1)
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("o1")), http.StatusOK, "", -1)
	if st := s.Stats(); st.Faulted[segmentapi.FaultOutage503] != 3 || st.Faulted[segmentapi.FaultFail] != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWithLatency(t *testing.T) {
	const latency = 50 * time.Millisecond
	s := segmentapi.StartT(t, writeKey, segmentapi.WithLatency(latency))
	c := newClient(t)
	began := time.Now()
	expect(t, mustPost(t, c, s.URL()+"/v1/batch", writeKey, tracks("l1")), http.StatusOK, "", -1)
	if took := time.Since(began); took < latency {
		t.Fatalf("answered after %v, want at least %v", took, latency)
	}
}

func TestConnectionsOpened(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	s.FailNext(1, http.StatusServiceUnavailable) // error answers keep the connection too
	for i := range 5 {
		if _, err := post(c, s.URL()+"/v1/batch", writeKey, tracks(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.ConnectionsOpened != 1 || st.Requests != 5 {
		t.Fatalf("keep-alive client: stats %+v, want 1 connection for 5 requests", st)
	}

	s.Reset()
	noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 3 {
		if _, err := post(noKeepAlive, s.URL()+"/v1/batch", writeKey, tracks(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.ConnectionsOpened != 3 {
		t.Fatalf("no keep-alive: %d connections, want 3", st.ConnectionsOpened)
	}
}

func TestMaxConcurrent(t *testing.T) {
	s := segmentapi.StartT(t, writeKey)
	c := newClient(t)
	entered, release := make(chan struct{}), make(chan struct{})
	s.OnRequest(func(*http.Request, []segmentapi.Call) {
		entered <- struct{}{}
		<-release
	})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, err := post(c, s.URL()+"/v1/batch", writeKey, tracks(fmt.Sprint("mc", i))); err != nil {
				t.Error(err)
			}
		})
	}
	for range 3 {
		<-entered // all three are now held in flight
	}
	close(release)
	wg.Wait()
	if st := s.Stats(); st.MaxConcurrent != 3 || st.ConnectionsOpened != 3 || st.Accepted != 3 {
		t.Fatalf("stats %+v", st)
	}
}
