package brazecurrents

import (
	"container/list"
	"sync"
	"time"
)

// spells follows failures that come back at every pass, by name (a
// directory that cannot be listed, an object that cannot be read), so that
// each is logged at error when it starts failing, at debug while it goes on
// and at info when it is over: a failure that lasts for days in watch mode
// is two lines, not one a pass. Safe for the readers to share.
//
// A spell ends when its name is read or listed here. In notification mode
// that may never happen (another replica read the object, the queue
// dead-lettered its notification): forgetAfter and max bound what is kept.
type spells struct {
	mu     sync.Mutex
	byName map[string]*list.Element // of *spell
	order  list.List                // least recently failed first

	// forgetAfter, when set, forgets a spell that has not failed again for
	// that long: a later failure starts a new one. max, when set, bounds
	// the spells kept, the least recently failed forgotten first.
	forgetAfter time.Duration
	max         int
}

type spell struct {
	name        string
	since, last time.Time // started; failed last
}

// failed notes that name failed at now; it is true when that starts a
// spell, which then wants logging at error.
func (s *spells) failed(name string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget(now)
	if e, ok := s.byName[name]; ok {
		e.Value.(*spell).last = now
		s.order.MoveToBack(e)
		return false
	}
	if s.byName == nil {
		s.byName = map[string]*list.Element{}
	}
	s.byName[name] = s.order.PushBack(&spell{name: name, since: now, last: now})
	if s.max > 0 && len(s.byName) > s.max {
		s.remove(s.order.Front())
	}
	return true
}

// forget drops the spells that have not failed for forgetAfter at now;
// s.mu is held.
func (s *spells) forget(now time.Time) {
	if s.forgetAfter <= 0 {
		return
	}
	for e := s.order.Front(); e != nil && now.Sub(e.Value.(*spell).last) > s.forgetAfter; e = s.order.Front() {
		s.remove(e)
	}
}

func (s *spells) remove(e *list.Element) {
	delete(s.byName, s.order.Remove(e).(*spell).name)
}

// get is name's spell at now, if it has one; s.mu is held.
func (s *spells) get(name string, now time.Time) (*spell, bool) {
	s.forget(now)
	e, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return e.Value.(*spell), true
}

// failing says whether name is in a spell of failure at now.
func (s *spells) failing(name string, now time.Time) bool {
	_, ok := s.lasting(name, now)
	return ok
}

// lasting says how long name has been failing at now, if it is.
func (s *spells) lasting(name string, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.get(name, now)
	if !ok {
		return 0, false
	}
	return now.Sub(sp.since), true
}

// ended ends the spell of name, if it had one, and says how long it lasted.
func (s *spells) ended(name string, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, ok := s.get(name, now)
	if !ok {
		return 0, false
	}
	s.remove(s.byName[name])
	return now.Sub(sp.since).Round(time.Second), true
}

// count is how many spells are kept.
func (s *spells) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byName)
}

// endWhere ends the spells whose name over says is over, calling fn with
// each name and how long its spell lasted.
func (s *spells) endWhere(now time.Time, over func(name string) bool, fn func(name string, lasted time.Duration)) {
	s.mu.Lock()
	var ended []string
	for name := range s.byName {
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

// outage follows one thing that works or fails as a whole (the listing of
// the prefix, receiving notifications), so that its working again after
// failures is said once, with how long it failed: the errors stopping would
// leave it to guess. Its owner's goroutine alone uses it.
type outage struct {
	since time.Time // the first failure's; zero while it works
}

// failed notes a failure at now; the first starts the outage.
func (o *outage) failed(now time.Time) {
	if o.since.IsZero() {
		o.since = now
	}
}

// ended ends the outage at now, if there was one, and says how long it
// lasted.
func (o *outage) ended(now time.Time) (time.Duration, bool) {
	if o.since.IsZero() {
		return 0, false
	}
	lasted := now.Sub(o.since).Round(time.Second)
	o.since = time.Time{}
	return lasted, true
}
