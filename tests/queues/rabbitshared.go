package queues

import (
	"os"
	"sync"
	"testing"
)

// SharedRabbit is a broker the tests of one package share: each start takes
// seconds (6 to 14 on a 2-core machine). The first test that needs it
// starts it; TestMain stops it with Close once the tests ran. Tests that
// share it use queues of their own, and read its log from a LogMark.
type SharedRabbit struct {
	Config RabbitConfig
	once   sync.Once
	r      *Rabbit
	err    error
}

// Get starts the broker on first use and returns it; a test that fails
// logs what the broker wrote.
func (s *SharedRabbit) Get(t testing.TB) *Rabbit {
	t.Helper()
	s.once.Do(func() { s.r, s.err = NewRabbitWith(s.Config) })
	if s.err != nil {
		t.Fatal(s.err)
	}
	s.r.logIfFailed(t)
	return s.r
}

// Close stops the broker, if a test started it.
func (s *SharedRabbit) Close() {
	if s.r != nil {
		s.r.Close()
	}
}

// LogMark is how much the broker has written so far, for LogsSince.
func (r *Rabbit) LogMark() int64 {
	info, err := os.Stat(r.brokerLogs)
	if err != nil {
		return 0
	}
	return info.Size()
}

// LogsSince is what the broker wrote after mark (from LogMark), restarts
// included.
func (r *Rabbit) LogsSince(mark int64) string {
	b, err := os.ReadFile(r.brokerLogs)
	if err != nil {
		return err.Error()
	}
	return string(b[min(mark, int64(len(b))):])
}
