package subscription

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"gocloud.dev/pubsub"
)

// sbLeases renews the locks of what an azuresb subscription received
// (peek-lock). Service Bus sets a lock's length (the entity's lock
// duration, 5 s to 5 min, 60 s by default), not the call: a renewal keeps
// the message for that long from the renewal on. The length is learnt from
// the locks themselves, and renewals come at half of it.
type sbLeases struct {
	receiver *azservicebus.Receiver
	entity   string // topic/Subscriptions/sub, for logs
	// lockFor is the lock duration as last seen (ns): what a renewal left
	// of the lock, or a received message's lock, the first seen.
	lockFor atomic.Int64
	now     func() time.Time
}

// sbEntity is the subscription that gocloud's azuresb URL opener opens for
// u: <topic>/Subscriptions/<name>.
func sbEntity(u *url.URL) string {
	return path.Join(u.Host, u.Path) + "/Subscriptions/" + u.Query().Get("subscription")
}

// lockID is m's lock token, as the leases know it.
func lockID(m *azservicebus.ReceivedMessage) string { return hex.EncodeToString(m.LockToken[:]) }

func (s *sbLeases) leaseID(m *pubsub.Message) (string, bool) {
	var rm *azservicebus.ReceivedMessage
	if !m.As(&rm) {
		return "", false
	}
	return lockID(rm), true
}

// firstLock is how long from now a lock ending at until, just fetched, is
// first renewed: when half of it is left, less leasePeriod (more than a
// look). The first lock seen stands for the lock duration until a renewal
// tells.
func (s *sbLeases) firstLock(until, now time.Time) time.Duration {
	left := until.Sub(now)
	s.lockFor.CompareAndSwap(0, int64(left))
	return max(0, left/2-leasePeriod)
}

// renewAfter is how long a renewal made now stands before the next: half
// the lock duration less leasePeriod (more than a look), so that each
// renewal comes before half the lock is gone; at most renewPeriod.
func (s *sbLeases) renewAfter() time.Duration {
	return max(0, min(renewPeriod, time.Duration(s.lockFor.Load())/2-leasePeriod))
}

// modify renews the locks of tokens, one call each (the SDK's renewal
// takes one message). Sending back (d 0) does nothing: the driver's Close
// has abandoned what is still held (sbDriver.Close), and a nack abandons
// its message itself.
func (s *sbLeases) modify(ctx context.Context, tokens []string, d time.Duration) error {
	if d == 0 {
		return nil
	}
	var lost sbLost
	var failed error
	for _, token := range tokens {
		m := &azservicebus.ReceivedMessage{}
		if _, err := hex.Decode(m.LockToken[:], []byte(token)); err != nil {
			return err
		}
		start := s.now()
		err := s.receiver.RenewMessageLock(ctx, m, nil)
		var sbErr *azservicebus.Error
		switch {
		case err == nil && m.LockedUntil != nil:
			s.lockFor.Store(int64(m.LockedUntil.Sub(start)))
		case errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost:
			// Settled meanwhile, or its lock ended: it comes again.
			lost.tokens = append(lost.tokens, token)
			lost.err = err
		case err != nil:
			failed = err
		}
	}
	if failed != nil {
		return failed
	}
	if len(lost.tokens) > 0 {
		return &lost
	}
	return nil
}

// sbLost is a renewal whose locks were lost for some tokens.
type sbLost struct {
	tokens []string
	err    error
}

func (l *sbLost) Error() string {
	return fmt.Sprintf("%d locks lost: %v", len(l.tokens), l.err)
}
func (l *sbLost) Unwrap() error     { return l.err }
func (l *sbLost) refused() []string { return l.tokens }

func (*sbLeases) maxIDs() int { return 50 }

func (*sbLeases) failure(err error) string {
	if sbErr, ok := errors.AsType[*azservicebus.Error](err); ok {
		return string(sbErr.Code)
	}
	return "other"
}

func (s *sbLeases) name() (queue, timer string) {
	return "Service Bus subscription " + s.entity, "lock"
}
