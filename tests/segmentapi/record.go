package segmentapi

import (
	"strings"
	"time"
)

// Stats counts what the server saw since Start or the last Reset. Only
// /v1/* requests count; /_control/ requests never do.
type Stats struct {
	Requests          int            `json:"requests"`             // /v1/* requests received
	HTTP2Requests     int            `json:"http2_requests"`       // of which over HTTP/2 (WithTLS)
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
	kept     []keptCall           // accepted calls as sent; none under WithRecordIDsOnly
	decoded  []Call               // Accepted's decodes of kept[:len(decoded)]
	arena    []byte               // chunk the kept calls are copied into
	counts   map[string]int       // messageId -> times accepted
	stamps   map[string]time.Time // messageId -> corrected timestamp when first accepted; none under WithRecordIDsOnly
	withID   int                  // accepted calls that had a messageId
	stats    Stats
	gen      uint64 // bumped by Reset so pre-Reset connections are not miscounted
	inflight int
}

// keptCall is an accepted call's JSON, decoded only when Accepted asks:
// raw bytes cost a fraction of a decoded map's memory, CPU and GC work.
type keptCall struct {
	raw         []byte
	impliedType string // the single-call path's type, filled in if absent
	writeKey    string // the key it came under
}

// arenaChunk is the size of the blocks kept calls are copied into, so that
// keeping a call costs no allocation of its own.
const arenaChunk = 1 << 20

func (r *records) clear() {
	*r = records{counts: map[string]int{}, stamps: map[string]time.Time{}, stats: Stats{Faulted: map[string]int{}}, gen: r.gen + 1, inflight: r.inflight}
}

// add records accepted calls (ids[i] is calls[i]'s messageId, "" when it has
// none) received at receivedAt, keeping their JSON and corrected timestamps
// unless keep is false. Calls without a messageId take no part in dedup
// counting (Segment would assign them one).
func (r *records) add(calls []scannedCall, impliedType, writeKey string, ids []string, receivedAt time.Time, keep bool) {
	for i := range calls {
		r.stats.Accepted++
		if keep {
			r.kept = append(r.kept, keptCall{raw: r.copyRaw(calls[i].raw), impliedType: impliedType, writeKey: writeKey})
			if _, seen := r.stamps[ids[i]]; !seen && ids[i] != "" {
				r.stamps[strings.Clone(ids[i])] = correctedTimestamp(&calls[i], receivedAt)
			}
		}
		if ids[i] != "" {
			r.counts[ids[i]]++ // one map operation: duplicates are derived
			r.withID++
		}
	}
}

func (r *records) copyRaw(b []byte) []byte {
	if len(b) > cap(r.arena)-len(r.arena) {
		r.arena = make([]byte, 0, max(arenaChunk, len(b)))
	}
	start := len(r.arena)
	r.arena = append(r.arena, b...)
	return r.arena[start:len(r.arena):len(r.arena)]
}

// messageIDs sets sc.ids to the calls' messageIds as substrings of one
// string: one allocation per request, and map keys without per-id overhead.
func (sc *scratch) messageIDs(calls []scannedCall) []string {
	sc.idb, sc.ids = sc.idb[:0], sc.ids[:0]
	total := 0
	for i := range calls {
		id := calls[i].messageID()
		sc.idb = append(sc.idb, id)
		total += len(id)
	}
	var b strings.Builder
	b.Grow(total)
	for _, id := range sc.idb {
		b.Write(id)
	}
	all, at := b.String(), 0
	for _, id := range sc.idb {
		sc.ids = append(sc.ids, all[at:at+len(id)])
		at += len(id)
	}
	clear(sc.idb) // the pool must not pin this request's data
	return sc.ids
}

// Accepted returns every accepted call in arrival order, duplicates included.
// It panics on a server started WithRecordIDsOnly, which keeps no calls:
// an empty answer there would read as "nothing arrived".
func (s *Server) Accepted() []Call {
	return s.accepted(func(keptCall) bool { return true })
}

// AcceptedUnder returns the calls accepted under writeKey (see WithWriteKeys)
// in arrival order, duplicates included.
func (s *Server) AcceptedUnder(writeKey string) []Call {
	return s.accepted(func(k keptCall) bool { return k.writeKey == writeKey })
}

func (s *Server) accepted(keep func(keptCall) bool) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.keepCalls() {
		panic("segmentapi: Accepted on a server started WithRecordIDsOnly, which keeps no calls")
	}
	for _, k := range s.rec.kept[len(s.rec.decoded):] {
		s.rec.decoded = append(s.rec.decoded, decodeCall(k.raw, k.impliedType))
	}
	var calls []Call
	for i, k := range s.rec.kept {
		if keep(k) {
			calls = append(calls, s.rec.decoded[i])
		}
	}
	return calls
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
	return s.rec.dups()
}

// dups is how many accepted calls repeated an already accepted messageId.
func (r *records) dups() int { return r.withID - len(r.counts) }

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
