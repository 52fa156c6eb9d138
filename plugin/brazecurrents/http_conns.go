package brazecurrents

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// connWatch counts the requests net/http ends before the input sees them: it
// answers some itself (headers over MaxHeaderBytes 431, a malformed request
// 400, an unsupported transfer coding 501, an Expect other than
// 100-continue 417) and closes the connection, and gives up silently on a
// client that leaves or stalls before its headers are whole. None reached
// braze_currents_http_requests: a proxy in front adding large headers would
// have every Braze request refused unseen. The status is not known here
// (net/http writes it to the connection itself, under TLS too): a
// connection that began a request (http.StateActive) and closed with no
// handler run for it had one of these.
type connWatch struct {
	conns     sync.Map // net.Conn → *connSeen, from ConnContext to StateClosed
	unhandled *service.MetricCounter
}

type connSeen struct {
	active  atomic.Bool // a request began, and was not answered yet
	handled atomic.Bool // the input's handler ran for it
}

type connSeenKey struct{}

// context is the server's ConnContext: it gives each connection's requests
// what the handler marks.
func (c *connWatch) context(ctx context.Context, conn net.Conn) context.Context {
	seen := &connSeen{}
	c.conns.Store(conn, seen)
	return context.WithValue(ctx, connSeenKey{}, seen)
}

// state is the server's ConnState.
func (c *connWatch) state(conn net.Conn, state http.ConnState) {
	v, ok := c.conns.Load(conn)
	if !ok {
		return
	}
	seen := v.(*connSeen)
	switch state {
	case http.StateActive: // before the handler, if it runs
		seen.handled.Store(false)
		seen.active.Store(true)
	case http.StateIdle: // answered
		seen.active.Store(false)
	case http.StateClosed, http.StateHijacked:
		c.conns.Delete(conn)
		if seen.active.Load() && !seen.handled.Load() {
			c.unhandled.Incr(1)
		}
	}
}

// handled marks r's connection as having its request handled.
func handled(r *http.Request) {
	if seen, ok := r.Context().Value(connSeenKey{}).(*connSeen); ok {
		seen.handled.Store(true)
	}
}
