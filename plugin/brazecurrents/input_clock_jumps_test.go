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

// newClockJumps starts the input at the true time start, with the clock
// right. Polls come every step, as Braze writes.
func newClockJumps(t *testing.T, start time.Time, step time.Duration) *clockJumps {
	dir := t.TempDir()
	c := &clockJumps{t: t, dir: dir, truth: start, step: step, written: map[string]time.Time{}, read: map[string]time.Time{},
		conf: fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: %v\nmax_parallel_objects: 2\nprogress_interval: 0s\nsummary_interval: 0s\n"+
			"checkpoint:\n  in_bucket: true\n  lease: 1000h", dir, step)}
	c.write()
	c.start(0)
	return c
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
// written (true time), and logs the longest delay and how many were read
// twice.
func (c *clockJumps) check(bound time.Duration) {
	c.t.Helper()
	c.steps(int(bound/c.step), 0, false)
	var lost []string
	longest, twice := time.Duration(0), 0
	for id, w := range c.written {
		n := 0
		for _, r := range c.runs {
			n += r.got.count(id)
		}
		if n > 1 {
			twice++
		}
		r, ok := c.read[id]
		if !ok {
			lost = append(lost, w.Format("Jan 2 15:04"))
			continue
		}
		longest = max(longest, r.Sub(w))
	}
	sort.Strings(lost)
	c.t.Logf("%d files written on time, %d events; %d events never read, %d read more than once; longest delay %v", c.files, len(c.written), len(lost), twice, longest)
	if len(lost) > 0 {
		c.t.Fatalf("%d of %d events written on time never read, written at %v … %v", len(lost), len(c.written), lost[0], lost[len(lost)-1])
	}
	if longest > bound {
		c.t.Fatalf("an event written on time was read %v after it was written, want at most %v", longest, bound)
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
	c := newClockJumps(t, at2(6).Add(5*time.Minute), 10*time.Minute)
	c.advance(30, 0)
	c.advance(3, 3*time.Hour)
	c.advance(18, 0)
	c.check(90 * time.Minute)
}

// A VM restored from a snapshot: the clock a day behind for three hours, on
// a checkpoint saved at the true time (the process restarted, or running on),
// then set right. Nothing settles, and the polls hour by hour list no hour
// (none after the watermark is before the clock); the listing of the
// partition's directory, once an hour, reads what Braze writes meanwhile.
func TestInputClockADayBehindLosesNoFile(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			c := newClockJumps(t, at2(6).Add(5*time.Minute), 10*time.Minute)
			c.advance(30, 0)
			if restart {
				c.restart(-24 * time.Hour)
			}
			c.advance(18, -24*time.Hour)
			c.advance(18, 0)
			c.check(90 * time.Minute)
		})
	}
}
