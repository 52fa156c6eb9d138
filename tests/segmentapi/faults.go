package segmentapi

import (
	"fmt"
	"net/http"
	"time"
)

// Fault kinds, as used in Stats.Faulted and the control API.
const (
	FaultFail      = "fail"
	FaultRateLimit = "ratelimit"
	FaultSlow      = "slow"
	FaultDrop      = "drop"
	FaultOutage503 = "outage503"
)

// fault is one scripted answer, consumed by one /v1/* request.
type fault struct {
	kind   string
	status int
	wait   time.Duration // Retry-After for ratelimit, delay for slow
}

func (s *Server) enqueue(n int, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queue = append(s.queue, f)
	}
}

// FailNext answers the next n requests with status (e.g. 500, 503, 400) and
// records nothing from them. A status outside 100..599 is treated as 500.
func (s *Server) FailNext(n int, status int) {
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError
	}
	s.enqueue(n, fault{kind: FaultFail, status: status})
}

// RateLimitNext answers the next n requests with 429 and
// Retry-After: ceil(retryAfter in seconds).
func (s *Server) RateLimitNext(n int, retryAfter time.Duration) {
	s.enqueue(n, fault{kind: FaultRateLimit, status: http.StatusTooManyRequests, wait: retryAfter})
}

// SlowNext answers the next n requests normally after delay, or not at all if
// the client goes away first.
func (s *Server) SlowNext(n int, delay time.Duration) {
	s.enqueue(n, fault{kind: FaultSlow, wait: delay})
}

// DropNext closes the connection of the next n requests without answering.
func (s *Server) DropNext(n int) {
	s.enqueue(n, fault{kind: FaultDrop})
}

// ClearFaults discards queued faults (the outage state is left alone).
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = nil
}

// Outage503 switches a standing outage on or off: while on, every request
// gets 503 and queued faults are not consumed.
func (s *Server) Outage503(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = on
}

// OnRequest sets a hook called once for every /v1/* request, just before the
// answer is written, with the calls accepted from it (nil when none). The
// hook runs on the request goroutine, so blocking in it holds the request in
// flight. nil removes the hook.
func (s *Server) OnRequest(fn func(r *http.Request, calls []Call)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

func (s *Server) currentHook() func(*http.Request, []Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hook
}

// nextFault returns the fault that applies to the current request, if any,
// and counts it: the standing outage first, else the head of the queue, else
// the storm's draw.
func (s *Server) nextFault() (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f fault
	switch {
	case s.outage:
		f = fault{kind: FaultOutage503, status: http.StatusServiceUnavailable}
	case len(s.queue) > 0:
		f = s.queue[0]
		s.queue = s.queue[1:]
	case s.storm != nil:
		var ok bool
		if f, ok = s.storm.draw(); !ok {
			return fault{}, false
		}
	default:
		return fault{}, false
	}
	s.rec.stats.Faulted[f.kind]++
	return f, true
}

// FaultSpec is the control API's fault request; see Inject.
type FaultSpec struct {
	Kind         string `json:"kind"` // fail, ratelimit, slow, drop, outage503, storm, revoked, clear
	N            int    `json:"n"`
	Status       int    `json:"status"`         // fail; default 500
	RetryAfterMS int64  `json:"retry_after_ms"` // ratelimit, storm
	DelayMS      int64  `json:"delay_ms"`
	On           bool   `json:"on"` // outage503, revoked
	// storm: the probabilities of a 503, a 429 and a dropped connection, and
	// the seed; all probabilities 0 stops the storm.
	Fail503      float64 `json:"fail503"`
	RateLimit429 float64 `json:"ratelimit429"`
	Drop         float64 `json:"drop"`
	Seed         uint64  `json:"seed"`
}

// Inject applies a FaultSpec, as POST /_control/fault does.
func (s *Server) Inject(f FaultSpec) error {
	if f.N < 0 {
		return fmt.Errorf("n must not be negative, got %d", f.N)
	}
	switch f.Kind {
	case FaultFail:
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
		}
		if f.Status < 100 || f.Status > 599 {
			return fmt.Errorf("status %d is not an HTTP status", f.Status)
		}
		s.FailNext(f.N, f.Status)
	case FaultRateLimit:
		s.RateLimitNext(f.N, time.Duration(f.RetryAfterMS)*time.Millisecond)
	case FaultSlow:
		s.SlowNext(f.N, time.Duration(f.DelayMS)*time.Millisecond)
	case FaultDrop:
		s.DropNext(f.N)
	case FaultOutage503:
		s.Outage503(f.On)
	case "storm":
		return s.Storm(StormSpec{Fail503: f.Fail503, RateLimit429: f.RateLimit429, Drop: f.Drop, Seed: f.Seed,
			RetryAfter: time.Duration(f.RetryAfterMS) * time.Millisecond})
	case FaultRevoked:
		s.RevokeKey(f.On)
	case "clear":
		s.ClearFaults()
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	return nil
}
