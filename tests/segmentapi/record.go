package segmentapi

// Stats counts what the server saw since Start or the last Reset. Only
// /v1/* requests count; /_control/ requests never do.
type Stats struct {
	Requests          int            `json:"requests"`             // /v1/* requests received
	Accepted          int            `json:"accepted"`             // calls accepted and recorded (duplicates included)
	Rejected400       int            `json:"rejected_400"`         // requests refused with 400 by validation (not injected)
	Unauthorized      int            `json:"unauthorized"`         // requests refused with 401
	BadRoute          int            `json:"bad_route"`            // unknown /v1/ path (404) or not POST (405)
	UnknownKeyCalls   int            `json:"unknown_key_calls"`    // calls answered 200 under an unknown write key, not recorded
	SilentlyDropped   int            `json:"silently_dropped"`     // calls answered 200 but dropped (batch over the call limit)
	Faulted           map[string]int `json:"faulted"`              // injected faults served, by kind (Fault* constants)
	ConnectionsOpened int            `json:"connections_opened"`   // new TCP connections, excluding control-only ones
	MaxConcurrent     int            `json:"max_concurrent"`       // most /v1/* requests in flight at once
	BodyBytes         int64          `json:"body_bytes"`           // request body bytes as received (compressed if gzip)
	MaxCallsInRequest int            `json:"max_calls_in_request"` // most calls parsed from one request
	MaxRequestBytes   int            `json:"max_request_bytes"`    // largest decoded body, the size the 500 KB limit applies to
}

// records is the mutable state behind Stats and Accepted; guarded by Server.mu.
type records struct {
	accepted []Call
	counts   map[string]int // messageId -> times accepted
	dups     int
	stats    Stats
	gen      uint64 // bumped by Reset so pre-Reset connections are not miscounted
	inflight int
}

func (r *records) clear() {
	r.accepted = nil
	r.counts = map[string]int{}
	r.dups = 0
	r.stats = Stats{Faulted: map[string]int{}}
	r.gen++
}

// add records accepted calls. Calls without a string messageId are kept but
// take no part in dedup counting (Segment would assign them one).
func (r *records) add(calls []Call) {
	for _, c := range calls {
		r.accepted = append(r.accepted, c)
		r.stats.Accepted++
		id, _ := c["messageId"].(string)
		if id == "" {
			continue
		}
		r.counts[id]++
		if r.counts[id] > 1 {
			r.dups++
		}
	}
}

// Accepted returns every accepted call in arrival order, duplicates included.
func (s *Server) Accepted() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.rec.accepted...)
}

// UniqueMessageIDs is the number of distinct messageIds accepted.
func (s *Server) UniqueMessageIDs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rec.counts)
}

// Count is how many times calls with messageID were accepted.
func (s *Server) Count(messageID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.counts[messageID]
}

// Duplicates is the number of accepted calls whose messageId had already been
// accepted (Segment would discard them).
func (s *Server) Duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.dups
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Server) statsLocked() Stats {
	st := s.rec.stats
	st.Faulted = make(map[string]int, len(s.rec.stats.Faulted))
	for k, v := range s.rec.stats.Faulted {
		st.Faulted[k] = v
	}
	return st
}

// Reset clears recorded calls and stats; queued faults, the outage state and
// the hook are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.clear()
}
