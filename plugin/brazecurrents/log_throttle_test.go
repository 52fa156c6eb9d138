package brazecurrents

import (
	"strings"
	"testing"
	"time"
)

// A kind of warning is logged at most once a minute; the lines between go
// to debug level, and the next warning says how many there were. Each kind
// keeps its own minute.
func TestLogThrottleWarnsOnceAMinuteOfEachKind(t *testing.T) {
	logs := newLineSink()
	th := newLogThrottle(logs.resources().Logger())
	now := at14(0)
	th.now = func() time.Time { return now }
	th.warn("503", "request 1: 503")
	th.warn("503", "request 2: 503")
	th.warn("malformed", "request 2: malformed")
	now = now.Add(59 * time.Second)
	th.warn("503", "request 3: 503")
	now = now.Add(time.Second)
	th.warn("503", "request 4: 503")
	want := []string{
		`level=WARN msg="request 1: 503"`,
		`level=DEBUG msg="request 2: 503"`,
		`level=WARN msg="request 2: malformed"`,
		`level=DEBUG msg="request 3: 503"`,
		`level=WARN msg="request 4: 503 (and 2 more like it since the last such warning, logged at debug level)"`,
	}
	got := strings.Split(logs.String(), "\n")
	if len(got) != len(want) {
		t.Fatalf("logged:\n%s\nwant %d lines", logs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("line %d: %s, want %s", i+1, got[i], w)
		}
	}
}
