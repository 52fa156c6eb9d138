package brazecurrents

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/redpanda-data/benthos/v4/public/service"
	"gocloud.dev/blob"

	"github.com/currents-connect/currents-connect/tests/fixtures"
)

// clockRun drives the input directly, as the pipeline would, on a fake
// clock: the test decides when polls happen, when the hours close and when
// the pipeline stalls (an outage downstream: batches wait unacknowledged and
// no more are taken).
type clockRun struct {
	t       *testing.T
	in      *currentsInput
	clock   *clockwork.FakeClock
	passes  chan int      // the input's passes, as each ends
	next    chan struct{} // lets the input go on to its next poll
	ctx     context.Context
	cancel  context.CancelFunc
	got     *collected
	logs    *lineSink // every line the input logs
	gate    chan bool // false stalls the consumer, true resumes it
	done    chan struct{}
	closing sync.Once
}

// startClockRun connects the input with conf at now and consumes it.
func startClockRun(t *testing.T, conf string, now time.Time) *clockRun {
	t.Helper()
	r, err := connectClockRun(t, conf, now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// connectClockRun connects the input with conf at now, letting the clock
// run through the pause of the checkpoint lease's claim, and consumes it.
func connectClockRun(t *testing.T, conf string, now time.Time) (*clockRun, error) {
	t.Helper()
	return connectClockRunWith(t, conf, now, nil)
}

// connectClockRunWith is connectClockRun with setup, when set, called on the
// input before it connects.
func connectClockRunWith(t *testing.T, conf string, now time.Time, setup func(*currentsInput)) (*clockRun, error) {
	t.Helper()
	parsed, err := inputSpec().ParseYAML(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := newLineSink()
	in, err := inputFromParsed(parsed, logs.resources())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &clockRun{t: t, in: in, clock: clockwork.NewFakeClockAt(now), passes: make(chan int), next: make(chan struct{}), ctx: ctx, cancel: cancel,
		got: newCollected(), logs: logs,
		gate: make(chan bool), done: make(chan struct{})}
	in.clock = r.clock
	// After each pass the input waits for the test, which makes every pass
	// a step of its own however far the test moves the clock.
	in.afterPass = func(inCtx context.Context, n int) {
		select {
		case r.passes <- n:
		case <-r.ctx.Done():
			return
		case <-inCtx.Done():
			return
		}
		select {
		case <-r.next:
		case <-r.ctx.Done():
		case <-inCtx.Done():
		}
	}
	// Each run stands for a process of its own, on a host of its own.
	in.owner.Host = fmt.Sprintf("host-%p", r)
	// A failed read waits to try again, on the clock, only until it is
	// moved on by that wait (a setup may drive those waits itself).
	in.readRetrying = func(_ string, wait time.Duration) { r.clock.Advance(wait) }
	if setup != nil {
		setup(in)
	}
	if err := connectOnClock(ctx, in, r.clock); err != nil {
		cancel()
		return nil, err
	}
	go r.consume()
	t.Cleanup(r.close)
	return r, nil
}

// connectOnClock connects in, whose clock is clock, letting the clock run
// through the pause of the checkpoint lease's claim.
func connectOnClock(ctx context.Context, in *currentsInput, clock *clockwork.FakeClock) error {
	connected := make(chan error, 1)
	go func() { connected <- in.Connect(ctx) }()
	settling := make(chan error, 1)
	go func() { settling <- clock.BlockUntilContext(ctx, 1) }()
	for {
		select {
		case err := <-connected:
			return err
		case <-settling:
			clock.Advance(time.Second) // the claim's pause before it is read back
			settling = nil
		}
	}
}

// consume reads batches and acknowledges them, except while stalled: then
// it holds what it read and reads nothing more until resumed.
func (r *clockRun) consume() {
	defer close(r.done)
	var held []service.AckFunc
	open := true
	for {
		if !open {
			select {
			case open = <-r.gate:
			case <-r.ctx.Done():
				return
			}
			if open {
				for _, ack := range held {
					_ = ack(r.ctx, nil)
				}
				held = nil
			}
			continue
		}
		type read struct {
			batch service.MessageBatch
			ack   service.AckFunc
			err   error
		}
		next := make(chan read, 1)
		go func() {
			b, ack, err := r.in.ReadBatch(r.ctx)
			next <- read{b, ack, err}
		}()
		var got read
		select {
		case got = <-next:
		case open = <-r.gate:
			got = <-next // the read under way completes before the stall
		}
		if got.err != nil {
			return
		}
		// Acked before it is recorded, so that a test that saw an event
		// also sees what its ack changed.
		if open {
			_ = got.ack(r.ctx, nil)
		} else {
			held = append(held, got.ack)
		}
		if err := r.got.consume(r.ctx, got.batch); err != nil {
			r.t.Error(err)
		}
	}
}

func (r *clockRun) stall()  { r.gate <- false }
func (r *clockRun) resume() { r.gate <- true }

// pass waits for the listing pass numbered n to end.
func (r *clockRun) pass(n int) {
	r.t.Helper()
	select {
	case got := <-r.passes:
		if got != n {
			r.t.Fatalf("pass %d ended, want %d", got, n)
		}
	case <-r.ctx.Done():
		r.t.Fatalf("listing pass %d never ended", n)
	}
}

// release lets the poll interval pass on the clock, and the input poll.
func (r *clockRun) release(interval time.Duration) {
	r.clock.Advance(interval)
	r.next <- struct{}{}
}

// poll lets the input poll and waits for that pass, numbered n.
func (r *clockRun) poll(n int, interval time.Duration) {
	r.t.Helper()
	r.release(interval)
	r.pass(n)
}

func (r *clockRun) close() {
	r.closing.Do(func() {
		r.cancel()
		if err := r.in.Close(context.Background()); err != nil {
			r.t.Error(err)
		}
		<-r.done
	})
}

// hourFile writes one object of partition (event type and integration) in
// hour, numbered n, and returns its event ids.
func hourFile(t *testing.T, dir, eventType string, hour time.Time, n int) map[string]bool {
	return writeFixture(t, dir, fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa",
		Records: 5, Seed: uint64(hour.Unix()) + uint64(n), DateHour: hour, Offset: n})
}

func union(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			out[k] = true
		}
	}
	return out
}

const emailSend, uninstall = "users.messages.email.Send", "users.behaviors.Uninstall"

func at14(minute int) time.Time { return time.Date(2026, 12, 1, 14, minute, 0, 0, time.UTC) }

// An outage downstream spans the close of hour 14; a file lands in hour 14
// before it closes, while the poll loop is stuck handing out objects. The
// first poll after the outage must still list hour 14.
func TestInputHoursOutageAcrossHourClose(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nlate_arrival: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s\ncheckpoint:\n  in_bucket: true\n  lease: 10m", dir)
	want := union(hourFile(t, dir, emailSend, at14(0).Add(-time.Hour), 0), hourFile(t, dir, emailSend, at14(0), 1))
	r := startClockRun(t, conf, at14(50))
	r.pass(0)
	r.got.waitFor(t, want)

	// 14:56, Segment answers 503: the pipeline stops taking batches.
	r.poll(1, 6*time.Minute)
	r.stall()
	// 14:57: three files land; the consumer takes the first one's batch, the
	// reader blocks on the second, the poll on handing out the third.
	first := hourFile(t, dir, emailSend, at14(0), 2)
	want = union(want, first, hourFile(t, dir, emailSend, at14(0), 3), hourFile(t, dir, emailSend, at14(0), 6))
	r.release(time.Minute)
	r.got.waitFor(t, first)
	// 14:58: a file lands on time in hour 14, which nothing lists until the
	// outage ends at 15:02, after the hour closed at 15:01.
	r.clock.Advance(time.Minute)
	want = union(want, hourFile(t, dir, emailSend, at14(0), 9))
	r.clock.Advance(4 * time.Minute)
	r.resume()
	r.pass(2)
	r.poll(3, time.Minute)
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)

	// The saved checkpoint holds hour 14's done keys, all of it done: the
	// polls since the partition's directory was listed at 14:50 went hour
	// by hour, and settle no hour closed since (settleBy). A restart on it
	// reads nothing again, then a new file.
	r.close()
	doc := savedCheckpoint(t, "file://"+dir, "currents-connect-checkpoint-currents-shard-0-of-1")
	if pd := doc.Partitions[r.partition(t, emailSend)]; pd.Watermark != "2026-12-01-13" || len(pd.Done) != 5 || doc.Owner != nil {
		t.Fatalf("saved %s, owner %v: want watermark hour 13, hour 14's 5 done keys, released", sums(pd), doc.Owner)
	}
	next := hourFile(t, dir, emailSend, at14(0).Add(time.Hour), 5)
	r2 := startClockRun(t, conf, at14(60+5))
	r2.pass(0)
	r2.got.waitFor(t, next)
	expectExactly(t, r2.got, next)
}

// partition is the partition of eventType in the fixtures' integration.
func (r *clockRun) partition(t *testing.T, eventType string) string {
	t.Helper()
	key := fixtures.Key(fixtures.FileSpec{EventType: eventType, IntegrationID: "aaaaaaaaaaaaaaaaaaaaaaaa", DateHour: at14(0)})
	partition, _, _ := strings.Cut(key, "/date=")
	return partition
}

// savedDoc is the checkpoint document as the input would save it now, and
// its size.
func (r *clockRun) savedDoc(t *testing.T) (*checkpointDoc, int) {
	t.Helper()
	raw, _, _, err := r.in.ckpt.snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := r.in.ckpt.parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc, len(raw)
}

// A first pass takes longer than late_arrival: a file lands in an hour the
// pass listed early on, before that hour closes. A later poll finds it.
func TestInputHoursFirstPassLongerThanLateArrival(t *testing.T) {
	dir := t.TempDir()
	ten := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nbatch_size: 5\nprogress_interval: 0s", dir)
	want := map[string]bool{}
	for h := 2; h < 10; h++ {
		want = union(want, hourFile(t, dir, emailSend, ten.Add(time.Duration(h-10)*time.Hour), h))
	}
	first := hourFile(t, dir, uninstall, ten, 0) // listed first: behaviors sorts before messages
	want = union(want, first)
	r := startClockRun(t, conf, ten)
	r.stall() // the pipeline is slow: the first pass takes three and a half hours
	r.got.waitFor(t, first)
	r.clock.Advance(30 * time.Minute)
	want = union(want, hourFile(t, dir, uninstall, ten, 1))
	r.clock.Advance(3 * time.Hour) // hour 10 closed at 13:00 (late_arrival 2h)
	r.resume()
	r.pass(0)
	r.poll(1, time.Minute)
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
}

// The poll loop is stuck for three days (longer than the hours a poll lists
// one by one): the next poll lists the partition's whole directory and finds
// the file that landed while it was stuck.
func TestInputHoursPollStalledForDays(t *testing.T) {
	dir := t.TempDir()
	conf := fmt.Sprintf("url: file://%s\nwatch: true\npoll_interval: 1m\nmax_parallel_objects: 1\nprogress_interval: 0s", dir)
	want := union(hourFile(t, dir, emailSend, at14(0), 0))
	r := startClockRun(t, conf, at14(10))
	r.pass(0)
	r.got.waitFor(t, want)
	r.poll(1, 3*time.Hour)
	r.stall()
	first := hourFile(t, dir, emailSend, at14(0).Add(2*time.Hour), 1)
	want = union(want, first, hourFile(t, dir, emailSend, at14(0).Add(2*time.Hour), 2), hourFile(t, dir, emailSend, at14(0).Add(2*time.Hour), 3))
	r.release(time.Minute) // the poll hands out two objects and blocks on the third
	r.got.waitFor(t, first)
	// Two days on, while the poll is still stuck, a file lands in an hour
	// after those it set out to list; the stall lasts a third day.
	late := at14(0).Add(40 * time.Hour)
	r.clock.Advance(late.Sub(r.clock.Now()) + 10*time.Minute)
	want = union(want, hourFile(t, dir, emailSend, late, 4))
	r.clock.Advance(24 * time.Hour)
	r.resume()
	r.pass(2)
	r.poll(3, time.Minute)
	r.got.waitFor(t, want)
	expectExactly(t, r.got, want)
}

// savedCheckpoint reads the checkpoint an input kept in the bucket at url.
func savedCheckpoint(t *testing.T, url, name string) *checkpointDoc {
	t.Helper()
	bucket, err := blob.OpenBucket(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	raw, err := newSlotted(&bucketStore{bucket: bucket}, "currents-connect/checkpoints/"+name+".json", nil).load(context.Background(), false)
	if err != nil || raw == nil {
		t.Fatalf("no checkpoint %s: %v", name, err)
	}
	var doc checkpointDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}
