package segmentapi

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// Fault kinds served by a storm, as counted in Stats.Faulted, and by a
// revoked write key.
const (
	FaultStorm503  = "storm503"
	FaultStorm429  = "storm429"
	FaultStormDrop = "stormdrop"
	FaultRevoked   = "revoked"
)

// StormSpec describes a fault storm: each /v1/* request independently gets
// a 503 with probability Fail503, a 429 with Retry-After with probability
// RateLimit429, or a dropped connection with probability Drop; otherwise it
// is served normally. The probabilities add up to at most 1.
type StormSpec struct {
	Fail503      float64
	RateLimit429 float64
	RetryAfter   time.Duration // the 429s' Retry-After, rounded up to whole seconds as RateLimitNext does
	Drop         float64
	Seed         uint64 // the same seed gives the same sequence of answers
}

// storm draws one answer per request from a PCG seeded by the spec, so a
// seed gives the same sequence of faults in request arrival order.
type storm struct {
	spec StormSpec
	rng  *rand.Rand
}

// stormStream is PCG's second seed word: fixed, so Seed alone picks the
// sequence.
const stormStream = 0x5e9e47_57a7d

// Storm starts a fault storm, replacing any running one; Storm(StormSpec{})
// (or any spec whose probabilities are all 0) stops it.
//
// Precedence: the standing Outage503 first, then queued faults (FailNext,
// RateLimitNext, SlowNext, DropNext), then the storm; a request that gets a
// queued fault draws nothing from the storm. Latency applies before all.
//
// A dropped connection is closed without an answer after the request body
// has been read, as a proxy or load balancer does when its upstream dies or
// it resets a connection mid-request: the client has sent everything and
// sees EOF or a reset while waiting for the answer, the ambiguous case it
// must retry. Nothing from a dropped request is recorded, so a correct client
// causes no duplicates. (A request that Segment processed but whose answer
// was lost is what SlowNext with a client timeout simulates.)
//
// Storm faults count in Stats.Faulted as FaultStorm503, FaultStorm429 and
// FaultStormDrop. Reset and ClearFaults leave the storm running.
func (s *Server) Storm(spec StormSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.Fail503 == 0 && spec.RateLimit429 == 0 && spec.Drop == 0 {
		s.storm = nil
		return nil
	}
	s.storm = &storm{spec: spec, rng: rand.New(rand.NewPCG(spec.Seed, stormStream))}
	return nil
}

func (spec StormSpec) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"fail503", spec.Fail503}, {"ratelimit429", spec.RateLimit429}, {"drop", spec.Drop}} {
		if !(p.v >= 0 && p.v <= 1) { // also refuses NaN
			return fmt.Errorf("storm: %s probability %v is not within [0, 1]", p.name, p.v)
		}
	}
	if sum := spec.Fail503 + spec.RateLimit429 + spec.Drop; sum > 1+1e-9 {
		return fmt.Errorf("storm: probabilities add up to %v, over 1", sum)
	}
	if spec.RetryAfter < 0 {
		return errors.New("storm: negative Retry-After")
	}
	return nil
}

// draw picks the next request's fault, if any: one uniform draw per request.
func (st *storm) draw() (fault, bool) {
	u := st.rng.Float64()
	switch sp := st.spec; {
	case u < sp.Fail503:
		return fault{kind: FaultStorm503, status: http.StatusServiceUnavailable}, true
	case u < sp.Fail503+sp.RateLimit429:
		return fault{kind: FaultStorm429, status: http.StatusTooManyRequests, wait: sp.RetryAfter}, true
	case u < sp.Fail503+sp.RateLimit429+sp.Drop:
		return fault{kind: FaultStormDrop}, true
	}
	return fault{}, false
}

// RevokeKey makes every /v1/* request with basic auth answer 401 with a JSON
// error, as for a source whose write key was revoked or that was disabled,
// until RevokeKey(false). Nothing is recorded meanwhile.
//
// Real Segment answers 200 {"success":true} to a write key it has never
// known and drops the calls (the server's default for a key other than its
// own), but 401 or 403 once a source's key is revoked or the source disabled:
// what the Braze connector loses events to. The 401 comes after injected
// faults (outage, queue, storm), which act as the network in front of the
// API. Each counts in Stats.Unauthorized and Stats.Faulted[FaultRevoked].
// Reset leaves the key revoked.
func (s *Server) RevokeKey(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = on
}

// revokedReply is the 401 of a revoked key, counted; ok is false when the
// key is not revoked.
func (s *Server) revokedReply() (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.revoked {
		return reply{}, false
	}
	s.rec.stats.Unauthorized++
	s.rec.stats.Faulted[FaultRevoked]++
	return errReply(http.StatusUnauthorized, "invalid write key: the key was revoked or the source is disabled"), true
}
