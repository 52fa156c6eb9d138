package brazecurrents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// eventCharge is what each event costs of max_buffered_size besides its
// JSON. Decoded and handed over, an event held about 3.4 times its JSON plus
// 490 bytes (a message, its metadata, its record's map), measured with
// runtime.MemStats: Braze-sized events (611 bytes of JSON) 2,550-2,850 bytes
// each, the smallest (19 bytes) 552. So what is held stays under 4 times
// what is charged (3.5-3.9 times), however small the events. Since events
// are decoded straight into their records (eventDecoder), a Braze-sized
// one's record is about 550 bytes smaller; the smallest hold the same.
const eventCharge = 128

// answer is what a request gets: a status and a short reason for people
// reading Braze's logs.
type answer struct {
	status int
	reason string
}

// shuttingDown answers a request whose events were not taken when the
// stream began to stop: none of them will be.
var shuttingDown = answer{http.StatusServiceUnavailable, "shutting down: this process takes no more events; Braze's retry delivers them"}

// ServeHTTP answers one POST of Currents' Custom HTTP connector. The order
// matters: the token is checked before a byte of the body is read, and the
// body's size before it is held.
func (in *httpInput) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	source := in.source(r)
	in.respond(w, source, in.serve(w, r, source))
}

// route hands a request for path, exactly, to ServeHTTP, and any other to
// wrongPath. Not a ServeMux: it answers a path it would clean (//currents,
// /x/../currents) with a redirect naming path, counted and logged nowhere,
// reads path as a pattern ({x} matches any segment) and panics on one with
// a space.
func (in *httpInput) route(w http.ResponseWriter, r *http.Request) {
	handled(r)
	if r.URL.Path == in.path {
		in.ServeHTTP(w, r)
		return
	}
	in.wrongPath(w, r)
}

// wrongPath answers a request to any path but the configured one: 404,
// counted, so that a Braze URL with a wrong path shows on the dashboard.
// With the token it is Braze set up with another path, whose events would
// otherwise only be retried, unseen, for 5 days: warned of, naming the
// path. Without, anyone knocking: the answer does not name the path.
func (in *httpInput) wrongPath(w http.ResponseWriter, r *http.Request) {
	source := in.source(r)
	if in.authorised(r) {
		in.warnings.warn("wrong path", fmt.Sprintf("%s: %s %q carries the token, but events are received at %q: set that path in Braze's Custom HTTP URL",
			source, r.Method, r.URL.Path, in.path))
	}
	in.respond(w, source, answer{http.StatusNotFound, "no Currents endpoint at this path"})
}

func (in *httpInput) source(r *http.Request) string {
	return fmt.Sprintf("http request %d from %s", in.counter.Add(1), r.RemoteAddr)
}

// respond writes a, counts it by status and logs it.
func (in *httpInput) respond(w http.ResponseWriter, source string, a answer) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	switch a.status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="currents"`)
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	case http.StatusUnsupportedMediaType:
		h.Set("Accept-Encoding", "gzip")
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(int(in.retryAfter.Round(time.Second)/time.Second)))
	}
	if a.status != http.StatusOK {
		// The body may be unread (401, 404, 405, 415, busy): net/http reads
		// what is left of one under 256 KiB, before answering to keep the
		// connection, or after it to close it, with no deadline of its own:
		// anyone could hold a connection, and Close, for ever by declaring
		// a body and not sending it. It gets timeout, as a body read here
		// does, and then the connection closes; Braze's retry opens another.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(in.timeout))
		h.Set("Connection", "close")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.reason+"\n")
	in.answered.Incr(1, strconv.Itoa(a.status))
	switch {
	case a.status == http.StatusOK:
		in.log.Tracef("%s: %s", source, a.reason)
	case a.status == http.StatusUnauthorized, a.status == http.StatusNotFound:
		// Anyone can knock: not worth a warning each.
		in.log.Debugf("%s: %d %s", source, a.status, a.reason)
	default:
		in.warnings.warn(strconv.Itoa(a.status), fmt.Sprintf("%s: %d %s", source, a.status, a.reason))
	}
}

func (in *httpInput) serve(w http.ResponseWriter, r *http.Request, source string) answer {
	start := in.now()
	if r.Method != http.MethodPost {
		return answer{http.StatusMethodNotAllowed, "only POST is accepted"}
	}
	switch in.tokenOf(r) {
	case noToken:
		return answer{http.StatusUnauthorized, "the Authorization header does not carry the configured bearer token"}
	case previousToken:
		in.previousUsed.Incr(1)
		in.warnings.warn("previous token", fmt.Sprintf("%s carries %s, not %s: Braze's Custom HTTP connector still sends the old token. "+
			"Once braze_currents_http_previous_token_requests stays flat, remove %s", source, httpFieldPreviousToken, httpFieldToken, httpFieldPreviousToken))
	}
	if in.isStopping() {
		return shuttingDown
	}
	if r.ContentLength > in.maxBody {
		return answer{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is %d bytes, over the limit of %d", r.ContentLength, in.maxBody)}
	}
	gzipped, refused := bodyCoding(r)
	if refused != nil {
		return *refused
	}
	// The timeout runs from the request's arrival, its wait for budget
	// included: the body's read deadline is this one too.
	deadline := start.Add(in.timeout)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	// Closing ends every wait, for budget as well: a request must not hold
	// Connect's shutdown until its timeout.
	cancelOn(ctx, cancel, in.closed)
	// Until its events are taken, the stop's start ends its waits: Connect
	// takes no more, and Braze should not wait for the drain to be told.
	taking, stopTaking := context.WithCancel(ctx)
	defer stopTaking()
	cancelOn(taking, stopTaking, in.stopping)
	// A body of known length is charged before it is read. One of unknown
	// length (chunked, gzip) is charged as it is read, a chunk at a time,
	// ahead of the requests waiting to take: charged max_body_size until
	// read, one such body held the whole budget by default, and a stalled
	// one held every other request until its timeout.
	held := min(chunkSize, in.maxBody)
	if r.ContentLength >= 0 && !gzipped {
		held = r.ContentLength
	}
	if err := in.buffered.take(taking, held); err != nil {
		return in.busy(r, start, err)
	}
	var noRoom error // why the body's next chunk got no share
	chargeChunks := func(n int64) error {
		// The chunk that finds a body over the limit is not charged: it
		// takes one byte, and the body is refused.
		n = min(n, in.maxBody)
		if n <= held {
			return nil
		}
		if noRoom = in.buffered.grow(taking, n-held); noRoom != nil {
			return noRoom
		}
		held = n
		return nil
	}
	body, status, err := in.readBody(w, r, gzipped, deadline, chargeChunks)
	if err != nil {
		in.buffered.done(held)
		if noRoom != nil {
			return in.busy(r, start, noRoom)
		}
		return answer{status, err.Error()}
	}
	in.buffered.release(held - int64(len(body)))
	held = int64(len(body))

	// The events are counted before they are decoded, so that their memory
	// is charged before it is spent.
	scan, err := scanHTTPBody(body)
	if err != nil {
		in.buffered.done(held)
		return answer{http.StatusBadRequest, err.Error()}
	}
	n := scan.events
	charge := held + int64(len(scan.shallow)) + int64(n)*eventCharge // shallow: a copy, with events too deep
	if charge > in.maxBuf {
		in.buffered.done(held)
		// Braze retries it as it is: said in full, since only a larger
		// budget takes it (with max_buffered_size at max_body_size, as by
		// default, a body within 128 bytes an event of the limit too).
		return answer{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body's %d events are charged %d bytes (%d bytes of JSON and %d per event), over the %d of %s: it is refused at every retry until %s is at least %d",
			n, charge, held, eventCharge, in.maxBuf, httpFieldMaxBuffered, httpFieldMaxBuffered, charge)}
	}
	// The body's bytes stay held meanwhile: they are in memory. Ahead of
	// the requests waiting for their bodies' share (budget.grow).
	if err := in.buffered.grow(taking, charge-held); err != nil {
		in.buffered.done(held)
		return in.busy(r, start, err)
	}
	held = charge
	events, err := decodeHTTPEvents(body, scan)
	if err != nil {
		in.buffered.done(held)
		return answer{http.StatusBadRequest, err.Error()}
	}
	if len(events) == 0 {
		in.buffered.done(held)
		return answer{http.StatusOK, "no events"}
	}
	req := httpRequest{batch: make(service.MessageBatch, len(events)), done: make(chan error, 1)}
	var types tally
	malformed := 0
	for i, e := range events {
		var msg *service.Message
		if e.err != nil {
			// A malformed event goes down the pipeline flagged, as it came,
			// to the error path: answered 400, Braze would drop it for good.
			msg = service.NewMessage(e.raw)
			msg.SetError(e.err)
			in.warnings.warn("malformed", fmt.Sprintf("%s: %v (sent on as an error)", source, e.err))
			malformed++
		} else {
			msg = service.NewMessage(nil)
			msg.SetStructuredMut(e.record)
		}
		if e.eventType != "" {
			msg.MetaSetMut(MetaEventType, e.eventType)
		}
		msg.MetaSetMut(MetaSource, source)
		msg.MetaSetMut(MetaRecordIndex, int64(i))
		req.batch[i] = msg
		types = types.add(e.eventType)
	}
	select {
	case in.requests <- req:
		types.flush(in.received, in.labels)
		in.malformed.Incr(int64(malformed))
	case <-taking.Done():
		in.buffered.done(held)
		if in.isStopping() {
			return shuttingDown
		}
		if left := clientLeft(r, start); left != "" {
			return answer{http.StatusServiceUnavailable, left + " before the pipeline took its events"}
		}
		return answer{http.StatusServiceUnavailable, fmt.Sprintf("the pipeline took no events within %s", in.timeout)}
	}
	why := "" // why the events are not delivered yet, when it is not the timeout
	select {
	case err := <-req.done:
		in.buffered.done(held)
		if err != nil {
			return answer{http.StatusServiceUnavailable, fmt.Sprintf("%d events not delivered: %v", len(events), err)}
		}
		if malformed > 0 {
			return answer{http.StatusOK, fmt.Sprintf("%d events delivered, %d of them malformed and sent on as errors", len(events), malformed)}
		}
		return answer{http.StatusOK, fmt.Sprintf("%d events delivered", len(events))}
	case <-ctx.Done():
	}
	if in.isClosed() {
		// Not the timeout: Connect stops, and what it has not sent by then
		// only Braze's retry delivers.
		why = "not yet delivered: shutting down; Braze's retry delivers them"
	} else if left := clientLeft(r, start); left != "" {
		why = "not yet delivered when " + left + "; they are kept"
	}
	if why == "" {
		why = fmt.Sprintf("not yet delivered within %s (Segment down or refusing the key?); they are kept", in.timeout)
	}
	// The events stay in the pipeline and are delivered (or dead-lettered)
	// later; their memory is held until then.
	go func() {
		<-req.done
		in.buffered.done(held)
	}()
	return answer{http.StatusServiceUnavailable, fmt.Sprintf("%d events %s and Segment deduplicates the retry", len(events), why)}
}

// clientLeft says so when the client, not the timeout, ended the wait of a
// request started at start: it closed the connection, as a proxy's or its
// own timeout shorter than ours does. Blaming the timeout (and Segment)
// there sent the operator to look at the wrong end.
func clientLeft(r *http.Request, start time.Time) string {
	if r.Context().Err() == nil {
		return ""
	}
	return fmt.Sprintf("the client closed the connection after %s (a timeout of its own, or a proxy's, shorter than %s?)",
		time.Since(start).Round(time.Millisecond), httpFieldTimeout)
}

// busy is the answer to a request, started at start, that got no share of
// max_buffered_size, for err.
func (in *httpInput) busy(r *http.Request, start time.Time, err error) answer {
	if in.isStopping() {
		return shuttingDown
	}
	if left := clientLeft(r, start); left != "" {
		return answer{http.StatusServiceUnavailable, left + " while earlier requests held max_buffered_size"}
	}
	if errors.Is(err, errBudgetStuck) {
		return answer{http.StatusServiceUnavailable, fmt.Sprintf("busy: the requests in flight hold all of %s with their bodies, and wait for room for the rest of their bodies or their events", httpFieldMaxBuffered)}
	}
	return answer{http.StatusServiceUnavailable, fmt.Sprintf("busy: %d bytes of earlier requests are still in flight", in.maxBuf)}
}

// readBody reads the body, refusing it past the limit and past the
// request's deadline (a slow sender must not hold its budget for ever). A body
// of known length is read into one buffer of that size; a chunked one into
// pooled chunks, each charged before it is taken (charge), copied out once
// complete, so that neither growing a buffer nor refusing a body past the
// limit leaves garbage of its size behind.
func (in *httpInput) readBody(w http.ResponseWriter, r *http.Request, gzipped bool, deadline time.Time, charge func(int64) error) ([]byte, int, error) {
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	body := http.MaxBytesReader(w, r.Body, in.maxBody)
	var data []byte
	var err error
	switch {
	case gzipped:
		return in.readGzip(body, charge)
	case r.ContentLength >= 0:
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(body, data)
	default:
		data, err = readChunked(body, charge)
	}
	if err != nil {
		status, err := in.readError(err)
		return nil, status, err
	}
	return data, 0, nil
}

// readError words an error reading the body, with its status.
func (in *httpInput) readError(err error) (int, error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("the body is over the limit of %d bytes", in.maxBody)
	}
	// A body not all sent within the timeout is a slow link, not a bad
	// request: Braze drops for good an event answered 400 twice, and
	// retries a 5xx.
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return http.StatusServiceUnavailable, fmt.Errorf("the body was not all received within %s", in.timeout)
	}
	return http.StatusBadRequest, fmt.Errorf("reading the body: %v", err)
}

const chunkSize = 64 << 10

var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// readChunked reads r to its end into pooled chunks, calling charge with
// the bytes the chunks will hold before taking each: the body holds no more
// than it was charged, but for the copy returned, made at the end.
func readChunked(r io.Reader, charge func(int64) error) ([]byte, error) {
	var parts []*[chunkSize]byte
	defer func() {
		for _, c := range parts {
			chunks.Put(c)
		}
	}()
	size := 0
	for {
		if err := charge(int64(len(parts)+1) * chunkSize); err != nil {
			return nil, err
		}
		c := chunks.Get().(*[chunkSize]byte)
		parts = append(parts, c)
		n, err := io.ReadFull(r, c[:])
		size += n
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	data := make([]byte, 0, size)
	for _, c := range parts {
		data = append(data, c[:min(chunkSize, size-len(data))]...)
	}
	return data, nil
}
