package refresh

import "time"

// Outcome is how a refresh cycle went, as far as timing cares.
type Outcome int

const (
	Succeeded Outcome = iota
	Failed            // some secret could not be checked; back off and retry
	Throttled         // AWS throttled us: the whole agent slows down
)

// Backoff and throttling bounds.
const (
	minBackoff     = time.Second
	maxSlowdown    = 16            // throttling grows the interval to at most 16 times the base
	maxInterval    = 6 * time.Hour // and never beyond this
	recoverPercent = 80            // each clean cycle brings a grown interval back to 80%
)

// Schedule decides how long to wait before each refresh. Tasks started
// together must not poll together, so every wait is jittered and the first
// is a random offset into the interval; throttling doubles the interval for
// the whole agent, and clean cycles shrink it back slowly, so a fleet settles
// under the account's quota instead of fighting it.
type Schedule struct {
	Base, Jitter time.Duration
	Rand         func() float64 // in [0, 1)
	// Cap, when above Base, bounds what throttling may grow the interval
	// to (the loop sets half of maxStale).
	Cap time.Duration

	current  time.Duration // the interval now, grown by throttling
	failures int           // consecutive failed cycles
}

// NewSchedule returns a schedule at its base interval.
func NewSchedule(base, jitter time.Duration, rnd func() float64) *Schedule {
	return &Schedule{Base: base, Jitter: jitter, Rand: rnd, current: base}
}

// Interval is the current interval, before jitter.
func (s *Schedule) Interval() time.Duration { return s.current }

// First is the wait before the first refresh: uniform in [0, interval).
func (s *Schedule) First() time.Duration {
	return time.Duration(s.Rand() * float64(s.current))
}

// Next records how a cycle went and returns the wait before the next one.
func (s *Schedule) Next(o Outcome) time.Duration {
	switch o {
	case Throttled:
		s.failures = 0
		limit := min(s.Base*maxSlowdown, max(maxInterval, s.Base))
		if s.Cap > 0 {
			limit = min(limit, max(s.Cap, s.Base))
		}
		s.current = min(s.current*2, limit)
		return s.jittered(s.current)
	case Failed:
		s.failures++
		// Capped exponential backoff with full jitter in its upper half:
		// retry soon after a blip, never more often than once a second,
		// never less often than the interval.
		d := min(minBackoff<<min(s.failures-1, 30), s.current)
		return d/2 + time.Duration(s.Rand()*float64(d/2))
	}
	s.failures = 0
	if s.current > s.Base {
		s.current = max(s.Base, s.current*recoverPercent/100)
	}
	return s.jittered(s.current)
}

// jittered returns d ± the jitter, scaled with d so a grown interval keeps
// the same relative spread.
func (s *Schedule) jittered(d time.Duration) time.Duration {
	j := time.Duration(float64(s.Jitter) * float64(d) / float64(s.Base))
	return d - j + time.Duration(s.Rand()*float64(2*j))
}
