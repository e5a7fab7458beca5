// Package status tracks whether the agent is healthy and ready and serves it,
// with the metrics, over HTTP: /healthz, /readyz and /metrics.
package status

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Status is the agent's health and readiness. Healthy means the first render
// is done (SPEC §6 "Failing safe": nothing that happens to AWS later changes
// it). Ready means healthy, and no secret stale and no problem open longer
// than maxStale. It is safe for concurrent use.
type Status struct {
	now func() time.Time

	mu       sync.Mutex
	maxStale time.Duration
	rendered bool
	stale    map[string]condition
	problems map[string]condition
}

// condition is a stale secret or an open problem: since when, and the latest
// reason (an AWS error code) or detail.
type condition struct {
	since  time.Time
	reason string
}

// New returns a Status that is neither healthy nor ready until Rendered is
// called. now is the clock (time.Now in production); a secret stale or a
// problem open for longer than maxStale makes the agent unready.
func New(maxStale time.Duration, now func() time.Time) *Status {
	if now == nil {
		now = time.Now
	}
	return &Status{
		maxStale: maxStale, now: now,
		stale: make(map[string]condition), problems: make(map[string]condition),
	}
}

// Rendered records that the first render wrote every file.
func (s *Status) Rendered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rendered = true
}

// SetMaxStale applies a reloaded refresh.maxStale.
func (s *Status) SetMaxStale(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxStale = d
}

// Stale records that name could not be refreshed since since, for reason (an
// error code such as "AccessDeniedException"). Repeated failures keep the
// earliest since, so the age counts from the first failure, and the latest
// reason, which is what an operator needs to fix now.
func (s *Status) Stale(name string, since time.Time, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	record(s.stale, name, since, reason)
}

// Fresh records that name was refreshed successfully.
func (s *Status) Fresh(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stale, name)
}

// Forget drops name after a config reload removed it.
func (s *Status) Forget(name string) { s.Fresh(name) }

// Problem records a condition that /readyz lists (e.g. key "render", detail "files do not hold the
// latest values: <error>"; key "action:1", detail "onChange[1] http failing: <error>"), since when.
// Like a stale secret, it makes the agent unready once older than maxStale; repeated calls keep the
// earliest since and the latest detail. detail is served as is: it must hold no secret value.
func (s *Status) Problem(key, detail string, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	record(s.problems, key, since, detail)
}

// Resolved clears a condition.
func (s *Status) Resolved(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.problems, key)
}

func record(m map[string]condition, key string, since time.Time, reason string) {
	c, ok := m[key]
	if !ok || since.Before(c.since) {
		c.since = since
	}
	c.reason = reason
	m[key] = c
}

// Healthy reports whether the first render is done; detail says why not.
// This is /healthz and `agent health`: an AWS outage after the first render
// must not get a task with good files replaced.
func (s *Status) Healthy() (ok bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rendered {
		return false, "first render not done"
	}
	return true, ""
}

// Ready reports whether the agent is ready. detail has one line per reason,
// sorted: why it is not ready, and stale secrets and open problems still
// within their limit. It is empty when there is nothing to say.
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
	line := func(what string, c condition) {
		age := max(now.Sub(c.since), 0) // a clock step back is not negative staleness
		l := fmt.Sprintf("%s for %s", what, age.Round(time.Second))
		if c.reason != "" {
			l += " (" + c.reason + ")"
		}
		l += ", limit " + s.maxStale.String()
		if age > s.maxStale {
			ok = false
		} else {
			l += " (within limit)"
		}
		lines = append(lines, l)
	}
	for name, c := range s.stale {
		line("secret "+name+" stale", c)
	}
	for key, c := range s.problems {
		line(key+" failing", c)
	}
	sort.Strings(lines)
	return ok, strings.Join(lines, "\n")
}
