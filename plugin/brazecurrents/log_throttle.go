package brazecurrents

import (
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// throttleEvery is how often a warning of one kind is logged at most.
const throttleEvery = time.Minute

// logThrottle keeps a warning that requests repeat at their own rate (a
// malformed event, a 503 through an outage, a Braze URL with a wrong path)
// to one a minute of each kind: Braze sends many requests a second, and a
// line for each would bury the rest of the log. The others go to debug
// level, and the next warning of the kind says how many it stood for.
// golang.org/x/time/rate's Sometimes does the once-a-minute part, but can
// neither count what it skipped nor take a test's clock.
type logThrottle struct {
	log   *service.Logger
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*throttled
}

type throttled struct {
	last time.Time // of the last warning
	held int       // lines logged at debug level since
}

func newLogThrottle(log *service.Logger) *logThrottle {
	return &logThrottle{log: log, now: time.Now, kinds: map[string]*throttled{}}
}

// warn logs line as a warning if none of kind was logged within
// throttleEvery, and at debug level otherwise.
func (t *logThrottle) warn(kind, line string) {
	now := t.now()
	t.mu.Lock()
	k := t.kinds[kind]
	if k == nil {
		k = &throttled{}
		t.kinds[kind] = k
	}
	held := k.held
	warned := k.last.IsZero() || now.Sub(k.last) >= throttleEvery
	if warned {
		k.last, k.held = now, 0
	} else {
		k.held++
	}
	t.mu.Unlock()
	if !warned {
		t.log.Debug(line)
		return
	}
	if held > 0 {
		line += fmt.Sprintf(" (and %d more like it since the last such warning, logged at debug level)", held)
	}
	t.log.Warn(line)
}
