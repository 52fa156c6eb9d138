package brazecurrents

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// inputStats counts what the input does, once for all of its readers: the
// metrics, the progress summary a human watching a backfill reads, and the
// summary a one-pass run ends with.
type inputStats struct {
	found, done, corrupt, failed *service.MetricCounter
	late                         *service.MetricCounter // objects found in an hour already counted as done
	listingsFailed               *service.MetricCounter // listings of the prefix or of a directory under it that failed
	events                       *service.MetricCounter // by event_type
	rejected                     *service.MetricCounter // records sent on flagged (not decoded) from objects otherwise read, by reason
	skipped                      *service.MetricCounter // objects listed and not read for not being .avro, by reason
	saves                        *service.MetricCounter // checkpoint writes, by result
	lag                          *service.MetricGauge
	leaseLapsed                  *service.MetricGauge   // 1 while the checkpoint's lease lapsed (holdingLocked), else 0
	shardsMissing                *service.MetricGauge   // shards of this count with no running replica past the grace
	shardsMismatched             *service.MetricGauge   // replicas of another shard count running past the grace
	heldBack                     *service.MetricGauge   // unreadable objects whose notifications wait to be sent back
	receivesFailed               *service.MetricCounter // receives from the notifications' queue that failed (each opens it again)
	noticesMalformed             *service.MetricCounter // notifications acknowledged unread for not being understood
	labels                       *typeLabels            // bounds the event types counted apart

	mu               sync.Mutex
	start            time.Time // when the first object was found
	objectsFound     int64
	objectsDone      int64 // corrupt ones included
	objectsCorrupt   int64
	objectsAbandoned int64 // left for a later pass
	eventsDone       int64 // the events of done objects
	listingComplete  bool
	newestDoneHour   time.Time // the newest queue hour with a done object
	eventsHanded     int64     // events handed to the pipeline
	eventsAnonymous  int64     // of those, without external_user_id
	eventsNoUser     int64     // of those, without user_id either
	eventsByType     map[string]int64
	eventsAcked      int64
	eventsNacked     int64
}

func newInputStats(m *service.Metrics, log *service.Logger) *inputStats {
	s := &inputStats{
		labels:  &typeLabels{maxOthers: maxOtherTypeLabels, log: log},
		found:   m.NewCounter("braze_currents_objects_found"),
		done:    m.NewCounter("braze_currents_objects_done"),
		corrupt: m.NewCounter("braze_currents_objects_corrupt"),
		failed:  m.NewCounter("braze_currents_objects_failed"),
		late:    m.NewCounter("braze_currents_objects_late"),

		listingsFailed: m.NewCounter("braze_currents_listings_failed"),
		events:         m.NewCounter("braze_currents_events_read", eventTypeLabel),
		rejected:       m.NewCounter("braze_currents_records_rejected", "reason"),
		skipped:        m.NewCounter("braze_currents_objects_skipped", "reason"),
		saves:          m.NewCounter("braze_currents_checkpoint_saves", "result"),
		lag:            m.NewGauge("braze_currents_checkpoint_lag_seconds"),
		leaseLapsed:    m.NewGauge("braze_currents_checkpoint_lease_lapsed"),

		shardsMissing:    m.NewGauge("braze_currents_shards_missing"),
		shardsMismatched: m.NewGauge("braze_currents_shards_mismatched"),
		heldBack:         m.NewGauge("braze_currents_notifications_held_back"),
		receivesFailed:   m.NewCounter("braze_currents_notification_receives_failed"),
		noticesMalformed: m.NewCounter("braze_currents_notifications_malformed"),

		eventsByType: map[string]int64{},
	}
	s.startAtZero()
	// There at 0 on a holder and on a standby alike, so that an alert on
	// it tells a replica that is not lapsed from one that is not scraped.
	s.leaseLapsed.Set(0)
	return s
}

// Results of a checkpoint save: the values of braze_currents_checkpoint_saves'
// result label.
const (
	saveOK    = "ok"
	saveError = "error"
)

// startAtZero creates each counter's series at 0, for every label value
// known in advance: rate() and increase() miss the first count of a series
// that appears already at 1, so a first burst would show as nothing and
// alert on nothing. The event types are left to appear on first use: 50 and
// more series of each, most never counted on a given deployment.
func (s *inputStats) startAtZero() {
	for _, c := range []*service.MetricCounter{s.found, s.done, s.corrupt, s.failed, s.late, s.listingsFailed, s.receivesFailed, s.noticesMalformed} {
		c.Incr(0)
	}
	s.rejected.Incr(0, rejectTooLarge)
	for _, r := range skipReasons {
		s.skipped.Incr(0, r)
	}
	s.saves.Incr(0, saveOK)
	s.saves.Incr(0, saveError)
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

// eventsRead counts a batch handed to the pipeline: n events of eventType,
// anonymous of them without external_user_id, noUser of those without
// user_id either.
// Types past Braze's known ones count apart up to a bound, then as other:
// each would be a series, and an entry of the summary, for ever.
func (s *inputStats) eventsRead(n, anonymous, noUser int, eventType string) {
	label := s.labels.label(eventType)
	s.events.Incr(int64(n), label)
	s.mu.Lock()
	s.eventsHanded += int64(n)
	s.eventsAnonymous += int64(anonymous)
	s.eventsNoUser += int64(noUser)
	s.eventsByType[label] += int64(n)
	s.mu.Unlock()
}

// eventsSettled counts the final acknowledgement of a batch of n events.
func (s *inputStats) eventsSettled(n int, err error) {
	s.mu.Lock()
	if err != nil {
		s.eventsNacked += int64(n)
	} else {
		s.eventsAcked += int64(n)
	}
	s.mu.Unlock()
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

// noticesHeldBack sets how many objects' notifications are held back.
func (s *inputStats) noticesHeldBack(n int) { s.heldBack.Set(int64(n)) }

func (s *inputStats) objectAbandoned() {
	s.failed.Incr(1)
	s.mu.Lock()
	s.objectsAbandoned++
	s.mu.Unlock()
}

func (s *inputStats) checkpointSaved(err error) {
	if err != nil {
		s.saves.Incr(1, saveError)
		return
	}
	s.saves.Incr(1, saveOK)
}

// leaseLapsedSet says whether the checkpoint's lease lapsed: no object
// starts until this process claims it again.
func (s *inputStats) leaseLapsedSet(lapsed bool) {
	if lapsed {
		s.leaseLapsed.Set(1)
		return
	}
	s.leaseLapsed.Set(0)
}

// shardsChecked sets what the last look at the other shards' checkpoints
// found (shard_check.go).
func (s *inputStats) shardsChecked(missing, mismatched int) {
	s.shardsMissing.Set(int64(missing))
	s.shardsMismatched.Set(int64(mismatched))
}

// restoredNewest starts the lag from the newest hour done before a restart,
// so that a restart with nothing new to read reports it, not nothing.
func (s *inputStats) restoredNewest(hour, now time.Time) {
	s.mu.Lock()
	if hour.After(s.newestDoneHour) {
		s.newestDoneHour = hour
	}
	s.mu.Unlock()
	s.reportLag(now)
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

// summaryTypes is how many event types the run summary names.
const summaryTypes = 5

// runSummary is the line a one-pass run ends with. The mapping drops events
// without a trace (deleted()), so the line says how many had no
// external_user_id, the likely share of what the output did not send, and
// how many of those no user at all, which it drops whatever its options.
func (s *inputStats) runSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "Run done: %d objects read (%d corrupt), %d left for a later pass; %d events read, %d acknowledged",
		s.objectsDone, s.objectsCorrupt, s.objectsAbandoned, s.eventsHanded, s.eventsAcked)
	if s.eventsNacked > 0 {
		fmt.Fprintf(&b, ", %d not (read again on the next run)", s.eventsNacked)
	}
	fmt.Fprintf(&b, "; %d had no external_user_id: the mapping skips those, as Braze's Segment connector does, unless include_anonymous "+
		"(BRAZE_INCLUDE_ANONYMOUS=true), and always the %d with no user_id either (no user at all)", s.eventsAnonymous, s.eventsNoUser)
	if len(s.eventsByType) > 0 {
		types := make([]string, 0, len(s.eventsByType))
		for t := range s.eventsByType {
			types = append(types, t)
		}
		slices.SortFunc(types, func(a, b string) int {
			return cmp.Or(cmp.Compare(s.eventsByType[b], s.eventsByType[a]), strings.Compare(a, b))
		})
		fmt.Fprintf(&b, "; events by type (%d types):", len(types))
		for i, t := range types[:min(len(types), summaryTypes)] {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s %d", t, s.eventsByType[t])
		}
		if len(types) > summaryTypes {
			fmt.Fprintf(&b, ", %d more types", len(types)-summaryTypes)
		}
	}
	return b.String()
}
