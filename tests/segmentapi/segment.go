package segmentapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// reply is the decided answer to one /v1/* request.
type reply struct {
	status int
	header http.Header
	body   any
	drop   bool // close the connection without answering
	abort  bool // client went away; write nothing
	// accepted is set when the request's calls were accepted; calls (in the
	// request's scratch) and impliedType then let the hook see them.
	accepted    bool
	calls       []scannedCall
	impliedType string
}

// hookCalls decodes the accepted calls for the hook: nil when none were
// accepted, non-nil (maybe empty) when the request was.
func (rep reply) hookCalls() []Call {
	if !rep.accepted {
		return nil
	}
	calls := make([]Call, 0, len(rep.calls))
	for _, c := range rep.calls {
		calls = append(calls, decodeCall(c.raw, rep.impliedType))
	}
	return calls
}

// scratch is one request's reusable memory, pooled so the request path
// allocates little per call.
type scratch struct {
	body  bytes.Buffer
	calls []scannedCall
	idb   [][]byte
	ids   []string
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// read reads at most limit bytes of r into the scratch body.
func (sc *scratch) read(r io.Reader, contentLength, limit int64) ([]byte, error) {
	sc.body.Reset()
	if contentLength > 0 {
		sc.body.Grow(int(min(contentLength, limit)) + bytes.MinRead) // ReadFrom wants MinRead spare
	}
	_, err := sc.body.ReadFrom(io.LimitReader(r, limit))
	return sc.body.Bytes(), err
}

type errorBody struct {
	Error string `json:"error"`
	Index *int   `json:"index,omitempty"`
}

var okBody = map[string]bool{"success": true} // what Segment answers on 200

func errReply(status int, msg string) reply {
	return reply{status: status, body: errorBody{Error: msg}}
}

// retryAfterReply is a 429 whose Retry-After and X-RateLimit-Reset (both
// documented by Segment for its 429s) are wait in whole seconds, rounded up.
func retryAfterReply(status int, wait time.Duration) reply {
	secs := strconv.Itoa(max(0, int(math.Ceil(wait.Seconds()))))
	rep := errReply(status, "rate limited (injected)")
	rep.header = http.Header{"Retry-After": {secs}, "X-Ratelimit-Reset": {secs}}
	return rep
}

// serveSegment handles every /v1/* request: count it, read the body, apply
// latency and faults, then the real contract; the hook sees the outcome
// before the client does.
func (s *Server) serveSegment(w http.ResponseWriter, r *http.Request) {
	s.enter(r)
	defer s.leave()
	// Read the whole body first, even for faults, so keep-alive connections
	// survive injected errors as they would with a real server. The cap only
	// guards memory; the real limit applies to the decoded body below.
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	raw, readErr := sc.read(r.Body, r.ContentLength, s.rawCap()+1)
	s.mu.Lock()
	s.rec.stats.BodyBytes += int64(len(raw))
	s.mu.Unlock()

	rep := s.decide(r, raw, readErr, sc)
	if h := s.currentHook(); h != nil {
		h(r, rep.hookCalls())
	}
	s.write(w, rep)
}

func (s *Server) enter(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.stats.Requests++
	if r.ProtoMajor == 2 {
		s.rec.stats.HTTP2Requests++
	}
	s.markConnLocked(r, roleSegment)
	s.rec.inflight++
	s.rec.stats.MaxConcurrent = max(s.rec.stats.MaxConcurrent, s.rec.inflight)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.inflight--
}

// rawCap bounds how much of a body is read: generous enough that a gzip body
// whose decoded size is within the limit is never cut short.
func (s *Server) rawCap() int64 { return 4*int64(s.cfg.maxBatchBytes) + 1024 }

func (s *Server) decide(r *http.Request, raw []byte, readErr error, sc *scratch) reply {
	if !sleepCtx(r.Context(), s.cfg.latency) {
		return reply{abort: true}
	}
	if f, ok := s.nextFault(); ok {
		switch f.kind {
		case FaultDrop, FaultStormDrop:
			return reply{drop: true}
		case FaultSlow:
			if !sleepCtx(r.Context(), f.wait) {
				return reply{abort: true}
			}
		case FaultRateLimit, FaultStorm429:
			return retryAfterReply(f.status, f.wait)
		default: // fail, outage503, storm503
			return errReply(f.status, "injected fault: "+f.kind)
		}
	}
	return s.process(r, raw, readErr, sc)
}

// process applies the Tracking API contract to a request.
func (s *Server) process(r *http.Request, raw []byte, readErr error, sc *scratch) reply {
	receivedAt := s.cfg.clock.Now()
	impliedType, ok := "", true
	// /v1/import is /v1/batch under the name Segment's older libraries use.
	if p := strings.TrimPrefix(r.URL.Path, "/v1/"); p != "batch" && p != "import" {
		impliedType, ok = p, callTypes[p]
	}
	switch {
	case !ok:
		s.count(func(st *Stats) { st.BadRoute++ })
		return errReply(http.StatusNotFound, "unknown path "+r.URL.Path)
	case r.Method != http.MethodPost:
		s.count(func(st *Stats) { st.BadRoute++ })
		return errReply(http.StatusMethodNotAllowed, "use POST")
	}
	user, _, hasAuth := r.BasicAuth()
	if !hasAuth || user == "" {
		// The documented alternative to Basic auth: the key in the body.
		user = bodyWriteKey(raw, r.Header.Get("Content-Encoding"), s.rawCap())
	}
	if user == "" {
		s.count(func(st *Stats) { st.Unauthorized++ })
		rep := errReply(http.StatusUnauthorized, "missing or malformed Authorization: use basic auth with the write key as user, or writeKey in the body")
		rep.header = http.Header{"Www-Authenticate": {`Basic realm="Segment"`}}
		return rep
	}
	if rep, revoked := s.revokedReply(); revoked {
		return rep
	}
	if readErr != nil {
		return s.reject(requestErr("reading body: %v", readErr))
	}
	if int64(len(raw)) > s.rawCap() {
		return s.reject(requestErr("request body over %d bytes", s.cfg.maxBatchBytes))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return s.reject(requestErr("Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
	}
	body, bad := decodeBody(raw, r.Header.Get("Content-Encoding"), s.rawCap())
	if bad != nil {
		return s.reject(bad)
	}
	s.count(func(st *Stats) { st.MaxRequestBytes = max(st.MaxRequestBytes, len(body)) })
	if len(body) > s.cfg.maxBatchBytes {
		return s.reject(requestErr("request body is %d bytes, over the %d byte limit", len(body), s.cfg.maxBatchBytes))
	}

	calls := sc.calls[:0]
	if impliedType == "" {
		calls, bad = splitBatch(body, calls)
		sc.calls = calls // keep the grown array for the next request
		if bad != nil {
			return s.reject(bad)
		}
	} else {
		calls = append(calls, scanSingle(bytes.TrimSpace(body)))
	}
	n := len(calls)
	s.count(func(st *Stats) { st.MaxCallsInRequest = max(st.MaxCallsInRequest, n) })
	if n > s.cfg.maxCalls {
		// Segment's documented quirk: 200, and the calls are silently lost.
		s.count(func(st *Stats) { st.SilentlyDropped += n })
		return reply{status: http.StatusOK, body: okBody}
	}
	if bad := checkCalls(calls, impliedType, s.cfg.maxCallBytes); bad != nil {
		return s.reject(bad)
	}
	if !s.writeKeys[user] {
		// Segment answers 200 to unknown keys; the data goes nowhere.
		s.count(func(st *Stats) { st.UnknownKeyCalls += n })
		return reply{status: http.StatusOK, body: okBody}
	}
	ids := sc.messageIDs(calls)
	s.mu.Lock()
	s.rec.add(calls, impliedType, user, ids, receivedAt, s.cfg.keepCalls())
	s.mu.Unlock()
	clear(sc.ids) // do not pin the ids from the pool
	return reply{status: http.StatusOK, body: okBody, accepted: true, calls: calls, impliedType: impliedType}
}

func (s *Server) count(fn func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.rec.stats)
}

// reject answers 400 naming the reason (and the call index when one call is
// at fault); nothing from the request is recorded.
func (s *Server) reject(b *badRequest) reply {
	s.count(func(st *Stats) { st.Rejected400++ })
	eb := errorBody{Error: b.msg}
	if b.index >= 0 {
		eb.Index = &b.index
	}
	return reply{status: http.StatusBadRequest, body: eb}
}

// bodyWriteKey is the top-level writeKey string of a JSON object body, or ""
// (Segment's writeKey authentication, for clients that send no Basic auth).
func bodyWriteKey(raw []byte, encoding string, limit int64) string {
	body, bad := decodeBody(raw, encoding, limit)
	if bad != nil || !json.Valid(body) {
		return ""
	}
	root := parse(body)
	if !root.IsObject() {
		return ""
	}
	key := ""
	root.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "writeKey" && v.Type == gjson.String {
			key = strings.Clone(v.Str) // later duplicates overwrite, as in a decode
		}
		return true
	})
	return key
}

// decodeBody undoes Content-Encoding (identity or gzip), reading at most
// limit+1 decoded bytes.
func decodeBody(raw []byte, encoding string, limit int64) ([]byte, *badRequest) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, requestErr("invalid gzip body: %v", err)
		}
		defer zr.Close()
		body, err := io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, requestErr("invalid gzip body: %v", err)
		}
		return body, nil
	default:
		return nil, requestErr("unsupported Content-Encoding %q", encoding)
	}
}

func (s *Server) write(w http.ResponseWriter, rep reply) {
	switch {
	case rep.abort:
		return
	case rep.drop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler) // cannot hijack: abort the connection instead
		}
		_ = conn.Close()
		return
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_ = json.NewEncoder(w).Encode(rep.body) // an error means the client left
}

// sleepCtx waits d unless ctx ends first; it reports whether to carry on.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
