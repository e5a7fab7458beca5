// Package status tracks whether the agent is ready and serves it, with the
// metrics, over HTTP: /healthz, /readyz and /metrics.
package status

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Status is the agent's readiness: first render done, and no secret stale
// longer than maxStale. It is safe for concurrent use.
type Status struct {
	maxStale time.Duration
	now      func() time.Time

	mu       sync.Mutex
	rendered bool
	stale    map[string]staleness
}

type staleness struct {
	since  time.Time
	reason string
}

// New returns a Status that is not ready until Rendered is called. now is the
// clock (time.Now in production); a secret stale for longer than maxStale
// makes the agent unready.
func New(maxStale time.Duration, now func() time.Time) *Status {
	if now == nil {
		now = time.Now
	}
	return &Status{maxStale: maxStale, now: now, stale: make(map[string]staleness)}
}

// Rendered records that the first render wrote every file.
func (s *Status) Rendered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rendered = true
}

// Stale records that name could not be refreshed since since, for reason (an
// error code such as "AccessDeniedException"). Repeated failures keep the
// earliest since, so the age counts from the first failure, and the latest
// reason, which is what an operator needs to fix now.
func (s *Status) Stale(name string, since time.Time, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stale[name]
	if !ok || since.Before(st.since) {
		st.since = since
	}
	st.reason = reason
	s.stale[name] = st
}

// Fresh records that name was refreshed successfully.
func (s *Status) Fresh(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stale, name)
}

// Forget drops name after a config reload removed it.
func (s *Status) Forget(name string) { s.Fresh(name) }

// Ready reports whether the agent is ready. detail has one line per reason,
// sorted: why it is not ready, and stale secrets still within their limit.
// It is empty when there is nothing to say.
func (s *Status) Ready() (ok bool, detail string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ok = true
	var lines []string
	if !s.rendered {
		ok = false
		lines = append(lines, "first render not done")
	}
	for name, st := range s.stale {
		age := max(now.Sub(st.since), 0) // a clock step back is not negative staleness
		line := fmt.Sprintf("secret %s stale for %s", name, age.Round(time.Second))
		if st.reason != "" {
			line += " (" + st.reason + ")"
		}
		line += ", limit " + s.maxStale.String()
		if age > s.maxStale {
			ok = false
		} else {
			line += " (within limit)"
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return ok, strings.Join(lines, "\n")
}
