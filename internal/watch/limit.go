package watch

import (
	"context"
	"sync"
	"time"
)

// ECS's account-wide request quotas (per account and region) that the
// watcher must stay under, shared with every deploy pipeline.
const (
	DefaultUpdatesPerSecond   = 5  // UpdateService
	DefaultDescribesPerSecond = 20 // DescribeServices (and DescribeTaskDefinition)
)

// limiter is a token bucket holding at most burst tokens and refilled at
// rate a second: Wait takes a token, or waits for one. Waiters are served
// in arrival order, each reserving the next free slot. It is safe for
// concurrent use.
type limiter struct {
	rate  float64 // tokens a second
	burst float64

	mu     sync.Mutex
	tokens float64 // may go negative: slots reserved by waiters
	last   time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{rate: perSecond, burst: float64(burst), tokens: float64(burst)}
}

// Wait returns when a call may be made, or ctx's error if ctx ends first
// (the slot is then given back).
func (l *limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	l.tokens--
	wait := time.Duration(-l.tokens / l.rate * float64(time.Second))
	l.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		l.tokens++
		l.mu.Unlock()
		return ctx.Err()
	}
}

// limits are the buckets of one region: ECS quotas are per account and
// region, so each region has its own.
type limits struct {
	update, describe *limiter
}
