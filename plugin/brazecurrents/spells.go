package brazecurrents

import (
	"sync"
	"time"
)

// spells follows failures that come back at every pass, by name (a
// directory that cannot be listed, an object that cannot be read), so that
// each is logged at error when it starts failing, at debug while it goes on
// and at info when it is over: a failure that lasts for days in watch mode
// is two lines, not one a pass. Safe for the readers to share.
type spells struct {
	mu    sync.Mutex
	since map[string]time.Time // name -> when its spell started
}

// failed notes that name failed at now; it is true when that starts a
// spell, which then wants logging at error.
func (s *spells) failed(name string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.since[name]; ok {
		return false
	}
	if s.since == nil {
		s.since = map[string]time.Time{}
	}
	s.since[name] = now
	return true
}

// failing says whether name is in a spell of failure.
func (s *spells) failing(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.since[name]
	return ok
}

// lasting says how long name has been failing at now, if it is.
func (s *spells) lasting(name string, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.since[name]
	return now.Sub(since), ok
}

// ended ends the spell of name, if it had one, and says how long it lasted.
func (s *spells) ended(name string, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	since, ok := s.since[name]
	if !ok {
		return 0, false
	}
	delete(s.since, name)
	return now.Sub(since).Round(time.Second), true
}

// endWhere ends the spells whose name over says is over, calling fn with
// each name and how long its spell lasted.
func (s *spells) endWhere(now time.Time, over func(name string) bool, fn func(name string, lasted time.Duration)) {
	s.mu.Lock()
	var ended []string
	for name := range s.since {
		if over(name) {
			ended = append(ended, name)
		}
	}
	s.mu.Unlock()
	for _, name := range ended {
		if lasted, ok := s.ended(name, now); ok {
			fn(name, lasted)
		}
	}
}
