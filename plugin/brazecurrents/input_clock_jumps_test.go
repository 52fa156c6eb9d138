package brazecurrents

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// clockJumps drives a watching input whose clock is off the true time by
// an offset that the test changes (a host's clock jumping forward, NTP
// setting it back, a VM restored from a snapshot), while Braze writes on
// time: at each step of true time, one file into the true current hour and
// one into the one before it, within late_arrival. It records, in true
// time, when each file's events were first delivered, across restarts of
// the input on the same checkpoint.
type clockJumps struct {
	t       *testing.T
	dir     string
	conf    string
	truth   time.Time // the true time
	step    time.Duration
	r       *clockRun
	pass    int
	files   int
	written map[string]time.Time // event id -> when its file was written
	read    map[string]time.Time // event id -> when first delivered
	runs    []*clockRun
}

// newClockJumps starts the input at 06:05, true time, with the clock right,
// and lets 5 hours pass: Braze writes, and the input polls, every 10 minutes.
func newClockJumps(t *testing.T) *clockJumps {
	dir, step := t.TempDir(), 10*time.Minute
	c := &clockJumps{t: t, dir: dir, truth: at2(6).Add(5 * time.Minute), step: step, written: map[string]time.Time{}, read: map[string]time.Time{},
		conf: fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: %v\nmax_parallel_objects: 2\nprogress_interval: 0s\nsummary_interval: 0s\n"+
			"checkpoint:\n  in_bucket: true\n  lease: 1000h", dir, step)}
	c.write()
	c.start(0)
	c.advance(30, 0)
	return c
}

// clockJumpsEach runs scenario on a process that runs on, then on one that
// restarts where the scenario says.
func clockJumpsEach(t *testing.T, scenario func(c *clockJumps, restart bool)) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) { scenario(newClockJumps(t), restart) })
	}
}

// write is Braze at the true time: a file into its hour and the one before.
func (c *clockJumps) write() {
	hour := c.truth.Truncate(time.Hour)
	for _, h := range []time.Time{hour, hour.Add(-time.Hour)} {
		c.files++
		for id := range hourFile(c.t, c.dir, emailSend, h, c.files) {
			c.written[id] = c.truth
		}
	}
}

// start starts a process whose clock is off by offset, and waits for its
// first pass to be read.
func (c *clockJumps) start(offset time.Duration) {
	c.r = startClockRun(c.t, c.conf, c.truth.Add(offset))
	c.runs = append(c.runs, c.r)
	c.pass = 0
	c.r.pass(0)
	c.settle()
}

// restart stops the process and starts another, its clock off by offset.
func (c *clockJumps) restart(offset time.Duration) {
	c.r.close()
	c.start(offset)
}

// advance lets n steps of true time pass, Braze writing at each, the
// input's clock off by offset, which polls once a step.
func (c *clockJumps) advance(n int, offset time.Duration) {
	c.steps(n, offset, true)
}

// steps lets n steps of true time pass, Braze writing at each if writing.
func (c *clockJumps) steps(n int, offset time.Duration, writing bool) {
	for range n {
		c.truth = c.truth.Add(c.step)
		if writing {
			c.write()
		}
		// The poll's timer fires first; the clock then jumps (back too):
		// the fake clock only moves its readings, which the real clock's
		// monotonic ones would not (due).
		target := c.truth.Add(offset)
		c.r.clock.Advance(max(c.step, target.Sub(c.r.clock.Now())))
		c.r.clock.Advance(target.Sub(c.r.clock.Now()))
		c.pass++
		c.r.next <- struct{}{}
		c.r.pass(c.pass)
		c.settle()
	}
}

// settle waits until every object the pass handed out was read and its
// events delivered, and notes when each was first delivered.
func (c *clockJumps) settle() {
	c.r.waitCounts("no object in flight", func(n inputCounts) bool { return n.inFlight == 0 && int64(c.r.got.total()) == n.read })
	for id := range c.written {
		if _, ok := c.read[id]; !ok && c.r.got.count(id) > 0 {
			c.read[id] = c.truth
		}
	}
}

// check lets the clock, right, run on for bound with Braze done writing,
// then fails unless every file written was read, each within bound of being
// written (true time). It logs the longest delay, and returns the events read
// more than once.
func (c *clockJumps) check(bound time.Duration) (twice map[string]bool) {
	c.t.Helper()
	c.steps(int(bound/c.step), 0, false)
	var lost []string
	longest, twice := time.Duration(0), map[string]bool{}
	for id, w := range c.written {
		n := 0
		for _, r := range c.runs {
			n += r.got.count(id)
		}
		if n > 1 {
			twice[id] = true
		}
		r, ok := c.read[id]
		if !ok {
			lost = append(lost, w.Format("Jan 2 15:04"))
			continue
		}
		longest = max(longest, r.Sub(w))
	}
	sort.Strings(lost)
	c.t.Logf("%d files written on time, %d events; %d events never read, %d read more than once; longest delay %v", c.files, len(c.written), len(lost), len(twice), longest)
	if len(lost) > 0 {
		c.t.Fatalf("%d of %d events written on time never read, written at %v … %v", len(lost), len(c.written), lost[0], lost[len(lost)-1])
	}
	if longest > bound {
		c.t.Fatalf("an event written on time was read %v after it was written, want at most %v", longest, bound)
	}
	return twice
}

// warnedAhead checks that the process running now warned that a watermark
// is ahead of its clock, and, if over, said when that ended.
func (c *clockJumps) warnedAhead(over bool) {
	c.t.Helper()
	c.r.logs.waitFor(c.t, "which had not closed by this host's clock", 1)
	if over {
		c.r.logs.waitFor(c.t, "No watermark is ahead of this host's clock any more", 1)
	}
}

func at2(h int) time.Time { return time.Date(2026, 12, 2, h, 0, 0, 0, time.UTC) }

// The clock jumps 3 hours ahead for three polls, then NTP sets it right.
// Those polls settle hours Braze still writes into (the true current one and
// the one before): its files there count as late, and the look back at
// settled hours reads them, each within 50 minutes here (an hour and a poll
// at most). Before due, the fake clock set back held the look back, and the
// listing of the partition's directory, for the 3 hours of the jump: read
// 3h50m late (the real clock's monotonic readings never held them).
func TestInputClockJumpsHoursAheadLosesNoFile(t *testing.T) {
	c := newClockJumps(t)
	c.advance(3, 3*time.Hour)
	c.advance(18, 0)
	if twice := c.check(90 * time.Minute); len(twice) > 0 {
		t.Fatalf("%d events read twice", len(twice))
	}
	c.warnedAhead(true)
}

// The clock jumps 3 days ahead, more than late_lookback, for three polls,
// then back: the watermark is then days ahead of the clock, and the hours up
// to it are read as late files (the process warns of it). Before, the
// document recorded that it remembered no hour before the lookback's start
// on that clock, days ahead: a process restarted on it (while the clock was
// ahead, or once set back, before its next save) never listed the hours Braze
// then wrote into, and lost every file of the next two days (here 210 of
// 210 events written after the jump); running on, it read them, and a day of
// files again (the day's hours it forgot, on that clock, taken as late).
// Read twice now: those of the hours the jump settled early.
func TestInputClockJumpsDaysAheadLosesNoFile(t *testing.T) {
	clockJumpsEach(t, func(c *clockJumps, restart bool) {
		jumped := c.truth
		c.advance(3, 72*time.Hour)
		if restart {
			c.restart(72 * time.Hour)
		}
		c.advance(1, 0)
		if restart {
			c.restart(0)
		}
		c.advance(18, 0)
		for id := range c.check(90 * time.Minute) {
			if c.written[id].Before(jumped.Add(-3 * time.Hour)) {
				t.Fatalf("an event written at %v, 3 hours before the jump and more, read twice", c.written[id])
			}
		}
		c.warnedAhead(false)
	})
}

// A VM restored from a snapshot: the clock a day behind for three hours, on
// a checkpoint saved at the true time (the process restarted, or running on),
// then set right. Nothing settles, and the polls hour by hour list no hour
// (none after the watermark is before the clock); the listing of the
// partition's directory, once an hour, reads what Braze writes meanwhile.
func TestInputClockADayBehindLosesNoFile(t *testing.T) {
	clockJumpsEach(t, func(c *clockJumps, restart bool) {
		if restart {
			c.restart(-24 * time.Hour)
		}
		c.advance(18, -24*time.Hour)
		c.advance(18, 0)
		if twice := c.check(90 * time.Minute); len(twice) > 0 {
			t.Fatalf("%d events read twice", len(twice))
		}
		c.warnedAhead(true)
	})
}
