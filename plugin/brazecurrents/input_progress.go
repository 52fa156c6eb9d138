package brazecurrents

import (
	"context"
	"sync"
	"time"
)

// progress counts what a human watching a backfill wants to know.
type progress struct {
	mu                                 sync.Mutex
	objectsFound, objectsDone, corrupt int64
	abandonedObjects, events           int64
	listingComplete                    bool
	start                              time.Time
}

func (p *progress) found(n int64) {
	p.mu.Lock()
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.objectsFound += n
	p.mu.Unlock()
}

func (p *progress) listed() {
	p.mu.Lock()
	p.listingComplete = true
	p.mu.Unlock()
}

func (p *progress) done(events int64, corrupt bool) {
	p.mu.Lock()
	p.objectsDone++
	p.events += events
	if corrupt {
		p.corrupt++
	}
	p.mu.Unlock()
}

func (p *progress) abandoned() {
	p.mu.Lock()
	p.abandonedObjects++
	p.mu.Unlock()
}

func (in *currentsInput) reportProgress(ctx context.Context) {
	ticker := time.NewTicker(in.conf.progressPeriod)
	defer ticker.Stop()
	lastDone := int64(-1)
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
		p := &in.progress
		p.mu.Lock()
		found, done, corrupt, abandoned, events, complete, start := p.objectsFound, p.objectsDone, p.corrupt, p.abandonedObjects, p.events, p.listingComplete, p.start
		p.mu.Unlock()
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
		in.log.Infof("Progress: %d of %d objects done (%d corrupt, %d left for a later pass), %d events, %.0f events/s, time left %s",
			done, found, corrupt, abandoned, events, rate, eta)
	}
}
