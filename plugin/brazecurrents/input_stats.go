package brazecurrents

import (
	"context"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// inputStats counts what the input does, once for both of its readers: the
// metrics, and the progress summary a human watching a backfill reads.
type inputStats struct {
	found, done, corrupt, failed *service.MetricCounter
	events                       *service.MetricCounter // by event_type
	rejected                     *service.MetricCounter // records dropped from objects otherwise read, by reason
	saves                        *service.MetricCounter // checkpoint writes, by result
	lag                          *service.MetricGauge

	mu               sync.Mutex
	start            time.Time // when the first object was found
	objectsFound     int64
	objectsDone      int64 // corrupt ones included
	objectsCorrupt   int64
	objectsAbandoned int64 // left for a later pass
	eventsDone       int64 // the events of done objects
	listingComplete  bool
	newestDoneHour   time.Time // the newest queue hour with a done object
}

func newInputStats(m *service.Metrics) *inputStats {
	return &inputStats{
		found:    m.NewCounter("braze_currents_objects_found"),
		done:     m.NewCounter("braze_currents_objects_done"),
		corrupt:  m.NewCounter("braze_currents_objects_corrupt"),
		failed:   m.NewCounter("braze_currents_objects_failed"),
		events:   m.NewCounter("braze_currents_events_read", "event_type"),
		rejected: m.NewCounter("braze_currents_records_rejected", "reason"),
		saves:    m.NewCounter("braze_currents_checkpoint_saves", "result"),
		lag:      m.NewGauge("braze_currents_checkpoint_lag_seconds"),
	}
}

func (s *inputStats) objectFound() {
	s.found.Incr(1)
	s.mu.Lock()
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.objectsFound++
	s.mu.Unlock()
}

func (s *inputStats) listingCompleted() {
	s.mu.Lock()
	s.listingComplete = true
	s.mu.Unlock()
}

func (s *inputStats) eventsRead(n int, eventType string) {
	s.events.Incr(int64(n), eventType)
}

// objectDone counts an object read to its end (or to its damage) whose
// events were all acknowledged, and updates the checkpoint lag from its
// queue hour.
func (s *inputStats) objectDone(hour time.Time, events int64, corrupt bool, now time.Time) {
	if corrupt {
		s.corrupt.Incr(1)
	} else {
		s.done.Incr(1)
	}
	s.mu.Lock()
	s.objectsDone++
	s.eventsDone += events
	if corrupt {
		s.objectsCorrupt++
	}
	if hour.After(s.newestDoneHour) {
		s.newestDoneHour = hour
	}
	s.mu.Unlock()
	s.reportLag(now)
}

func (s *inputStats) objectAbandoned() {
	s.failed.Incr(1)
	s.mu.Lock()
	s.objectsAbandoned++
	s.mu.Unlock()
}

func (s *inputStats) checkpointSaved(err error) {
	if err != nil {
		s.saves.Incr(1, "error")
		return
	}
	s.saves.Incr(1, "ok")
}

// reportLag sets how far behind now the end of the newest done hour is.
func (s *inputStats) reportLag(now time.Time) {
	s.mu.Lock()
	newest := s.newestDoneHour
	s.mu.Unlock()
	if !newest.IsZero() {
		s.lag.Set(int64(max(0, now.Sub(newest.Add(time.Hour)).Seconds())))
	}
}

// tickLag keeps the checkpoint lag current while nothing new gets done, so
// that a stalled pipeline shows a growing lag.
func (s *inputStats) tickLag(ctx context.Context, clock clockwork.Clock) {
	ticker := time.NewTicker(15 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			s.reportLag(clock.Now())
		case <-ctx.Done():
			return
		}
	}
}

// logProgress logs a summary every period while objects get done.
func (s *inputStats) logProgress(ctx context.Context, log *service.Logger, period time.Duration) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	lastDone := int64(-1)
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		found, done, corrupt, abandoned, events, complete, start := s.objectsFound, s.objectsDone, s.objectsCorrupt, s.objectsAbandoned, s.eventsDone, s.listingComplete, s.start
		s.mu.Unlock()
		if done == lastDone || start.IsZero() {
			continue // idle watch mode: nothing new to say
		}
		lastDone = done
		elapsed := time.Since(start)
		rate := float64(events) / elapsed.Seconds()
		eta := "unknown until listing completes"
		if complete && done > 0 {
			eta = (time.Duration(float64(elapsed) * float64(found-done) / float64(done))).Round(time.Second).String()
		}
		log.Infof("Progress: %d of %d objects done (%d corrupt, %d left for a later pass), %d events, %.0f events/s, time left %s",
			done, found, corrupt, abandoned, events, rate, eta)
	}
}
