package status

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestReady(t *testing.T) {
	const limit = 10 * time.Minute
	tests := []struct {
		name   string
		do     func(s *Status)
		now    time.Time
		ok     bool
		detail string
	}{
		{
			name:   "new",
			do:     func(*Status) {},
			now:    t0,
			detail: "first render not done",
		},
		{
			name: "rendered",
			do:   func(s *Status) { s.Rendered() },
			now:  t0, ok: true,
		},
		{
			name: "stale within limit is listed but ready",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("API_KEY", t0, "ThrottlingException")
			},
			now: t0.Add(2 * time.Minute), ok: true,
			detail: "secret API_KEY stale for 2m0s (ThrottlingException), limit 10m0s (within limit)",
		},
		{
			name: "stale exactly at the limit is still within it",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("API_KEY", t0, "ThrottlingException")
			},
			now: t0.Add(limit), ok: true,
			detail: "secret API_KEY stale for 10m0s (ThrottlingException), limit 10m0s (within limit)",
		},
		{
			name: "stale past the limit",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
			},
			now:    t0.Add(12 * time.Minute),
			detail: "secret DB_PASSWORD stale for 12m0s (AccessDeniedException), limit 10m0s",
		},
		{
			name: "earliest since is kept, latest reason shown",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "ThrottlingException")
				s.Stale("DB_PASSWORD", t0.Add(5*time.Minute), "AccessDeniedException")
			},
			now:    t0.Add(11 * time.Minute),
			detail: "secret DB_PASSWORD stale for 11m0s (AccessDeniedException), limit 10m0s",
		},
		{
			name: "an earlier since given later moves the start back",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0.Add(5*time.Minute), "RequestError")
				s.Stale("DB_PASSWORD", t0, "RequestError")
			},
			now:    t0.Add(11 * time.Minute),
			detail: "secret DB_PASSWORD stale for 11m0s (RequestError), limit 10m0s",
		},
		{
			name: "fresh clears",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
				s.Fresh("DB_PASSWORD")
			},
			now: t0.Add(time.Hour), ok: true,
		},
		{
			name: "stale again after fresh counts from the new failure",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
				s.Fresh("DB_PASSWORD")
				s.Stale("DB_PASSWORD", t0.Add(55*time.Minute), "AccessDeniedException")
			},
			now: t0.Add(time.Hour), ok: true,
			detail: "secret DB_PASSWORD stale for 5m0s (AccessDeniedException), limit 10m0s (within limit)",
		},
		{
			name: "forget drops a removed secret",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("OLD", t0, "ParameterNotFound")
				s.Forget("OLD")
			},
			now: t0.Add(time.Hour), ok: true,
		},
		{
			name: "several reasons, sorted",
			do: func(s *Status) {
				s.Stale("ZED", t0, "AccessDeniedException")
				s.Stale("ALPHA", t0.Add(8*time.Minute), "ThrottlingException")
			},
			now: t0.Add(15*time.Minute + 400*time.Millisecond),
			detail: "first render not done\n" +
				"secret ALPHA stale for 7m0s (ThrottlingException), limit 10m0s (within limit)\n" +
				"secret ZED stale for 15m0s (AccessDeniedException), limit 10m0s",
		},
		{
			name: "no reason",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("X", t0, "")
			},
			now:    t0.Add(20 * time.Minute),
			detail: "secret X stale for 20m0s, limit 10m0s",
		},
		{
			name: "clock stepped back",
			do: func(s *Status) {
				s.Rendered()
				s.Stale("X", t0, "RequestError")
			},
			now: t0.Add(-time.Minute), ok: true,
			detail: "secret X stale for 0s (RequestError), limit 10m0s (within limit)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(limit, func() time.Time { return tt.now })
			tt.do(s)
			ok, detail := s.Ready()
			if ok != tt.ok || detail != tt.detail {
				t.Errorf("Ready() = %v, %q\nwant      %v, %q", ok, detail, tt.ok, tt.detail)
			}
		})
	}
}

// The clock is read on every call: a secret crosses its limit without any
// further Stale call.
func TestReadyAges(t *testing.T) {
	now := t0
	s := New(10*time.Minute, func() time.Time { return now })
	s.Rendered()
	s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
	if ok, _ := s.Ready(); !ok {
		t.Fatal("not ready at once")
	}
	now = t0.Add(10*time.Minute + time.Second)
	if ok, detail := s.Ready(); ok {
		t.Fatalf("ready past the limit: %q", detail)
	}
}

func TestConcurrent(t *testing.T) {
	s := New(time.Minute, time.Now)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprint("S", i%3)
			for range 200 {
				s.Stale(name, time.Now(), "ThrottlingException")
				s.Ready()
				s.Fresh(name)
				s.Rendered()
				s.Forget(name)
			}
		})
	}
	wg.Wait()
	if ok, detail := s.Ready(); !ok || detail != "" {
		t.Fatalf("Ready() = %v, %q after every secret was forgotten", ok, detail)
	}
}

// Health is alive and first render done; no staleness, however old, and no
// problem fails it (SPEC §6 "Failing safe"), while readiness does.
func TestHealthyIgnoresStalenessAndProblems(t *testing.T) {
	now := t0
	s := New(10*time.Minute, func() time.Time { return now })
	if ok, detail := s.Healthy(); ok || detail != "first render not done" {
		t.Fatalf("Healthy() before the first render = %v, %q", ok, detail)
	}
	s.Rendered()
	s.Stale("DB_PASSWORD", t0, "InternalServerError")
	s.Stale("API_KEY", t0, "AccessDeniedException")
	s.Problem("render", "files do not hold the latest values: no space left on device", t0)
	now = t0.Add(30 * time.Minute) // 3 × maxStale
	if ok, detail := s.Healthy(); !ok || detail != "" {
		t.Errorf("Healthy() stale past the limit = %v, %q; want true, \"\"", ok, detail)
	}
	if ok, _ := s.Ready(); ok {
		t.Error("Ready() = true with secrets stale for 30m against a 10m limit")
	}
}

func TestProblems(t *testing.T) {
	const limit = 10 * time.Minute
	tests := []struct {
		name   string
		do     func(s *Status)
		now    time.Time
		ok     bool
		detail string
	}{
		{
			name: "within limit is listed but ready",
			do: func(s *Status) {
				s.Problem("render", "files do not hold the latest values: no space left on device", t0)
			},
			now: t0.Add(3 * time.Second), ok: true,
			detail: "render failing for 3s (files do not hold the latest values: no space left on device), limit 10m0s (within limit)",
		},
		{
			name: "past limit is not ready",
			do: func(s *Status) {
				s.Problem("action:1", "onChange[1] http failing: 500 Internal Server Error", t0)
			},
			now:    t0.Add(10*time.Minute + time.Second),
			detail: "action:1 failing for 10m1s (onChange[1] http failing: 500 Internal Server Error), limit 10m0s",
		},
		{
			name: "repeated calls keep the earliest since and the latest detail",
			do: func(s *Status) {
				s.Problem("action:0", "onChange[0] signal failing: first", t0.Add(2*time.Minute))
				s.Problem("action:0", "onChange[0] signal failing: second", t0)
				s.Problem("action:0", "onChange[0] signal failing: third", t0.Add(5*time.Minute))
			},
			now:    t0.Add(11 * time.Minute),
			detail: "action:0 failing for 11m0s (onChange[0] signal failing: third), limit 10m0s",
		},
		{
			name: "resolved clears",
			do: func(s *Status) {
				s.Problem("render", "files do not hold the latest values: x", t0)
				s.Resolved("render")
			},
			now: t0.Add(time.Hour), ok: true,
		},
		{
			name: "a problem again after resolved counts from the new since",
			do: func(s *Status) {
				s.Problem("render", "files do not hold the latest values: x", t0)
				s.Resolved("render")
				s.Problem("render", "files do not hold the latest values: y", t0.Add(58*time.Minute))
			},
			now: t0.Add(time.Hour), ok: true,
			detail: "render failing for 2m0s (files do not hold the latest values: y), limit 10m0s (within limit)",
		},
		{
			name:   "resolving an unknown key is a no-op",
			do:     func(s *Status) { s.Resolved("action:7") },
			now:    t0,
			ok:     true,
			detail: "",
		},
		{
			name: "a problem and a secret of the same name are separate",
			do: func(s *Status) {
				s.Problem("render", "files do not hold the latest values: x", t0)
				s.Stale("render", t0, "ThrottlingException")
				s.Resolved("render")
			},
			now: t0.Add(time.Minute), ok: true,
			detail: "secret render stale for 1m0s (ThrottlingException), limit 10m0s (within limit)",
		},
		{
			name: "problems and stale secrets, sorted",
			do: func(s *Status) {
				s.Problem("render", "files do not hold the latest values: x", t0)
				s.Problem("action:1", "onChange[1] http failing: y", t0.Add(9*time.Minute))
				s.Stale("API_KEY", t0.Add(9*time.Minute), "ThrottlingException")
			},
			now: t0.Add(12 * time.Minute),
			detail: "action:1 failing for 3m0s (onChange[1] http failing: y), limit 10m0s (within limit)\n" +
				"render failing for 12m0s (files do not hold the latest values: x), limit 10m0s\n" +
				"secret API_KEY stale for 3m0s (ThrottlingException), limit 10m0s (within limit)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(limit, func() time.Time { return tt.now })
			s.Rendered()
			tt.do(s)
			ok, detail := s.Ready()
			if ok != tt.ok || detail != tt.detail {
				t.Errorf("Ready() = %v, %q\nwant      %v, %q", ok, detail, tt.ok, tt.detail)
			}
			if ok, _ := s.Healthy(); !ok {
				t.Error("Healthy() = false after the first render")
			}
		})
	}
}

// A reloaded maxStale applies at once to what is already stale or open.
func TestSetMaxStale(t *testing.T) {
	now := t0.Add(5 * time.Minute)
	s := New(10*time.Minute, func() time.Time { return now })
	s.Rendered()
	s.Stale("DB_PASSWORD", t0, "InternalServerError")
	s.Problem("render", "files do not hold the latest values: x", t0.Add(time.Minute))
	want := "render failing for 4m0s (files do not hold the latest values: x), limit 10m0s (within limit)\n" +
		"secret DB_PASSWORD stale for 5m0s (InternalServerError), limit 10m0s (within limit)"
	if ok, detail := s.Ready(); !ok || detail != want {
		t.Fatalf("Ready() = %v, %q\nwant      true, %q", ok, detail, want)
	}

	s.SetMaxStale(4*time.Minute + 30*time.Second)
	want = "render failing for 4m0s (files do not hold the latest values: x), limit 4m30s (within limit)\n" +
		"secret DB_PASSWORD stale for 5m0s (InternalServerError), limit 4m30s"
	if ok, detail := s.Ready(); ok || detail != want {
		t.Fatalf("after SetMaxStale(4m30s): Ready() = %v, %q\nwant      false, %q", ok, detail, want)
	}

	s.SetMaxStale(time.Hour)
	if ok, _ := s.Ready(); !ok {
		t.Fatal("after SetMaxStale(1h): not ready")
	}
}

func TestConcurrentProblems(t *testing.T) {
	s := New(time.Minute, time.Now)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			key := fmt.Sprint("action:", i%3)
			for j := range 200 {
				s.Problem(key, "onChange failing", time.Now())
				s.SetMaxStale(time.Duration(j+1) * time.Second)
				s.Ready()
				s.Healthy()
				s.Resolved(key)
			}
		})
	}
	wg.Wait()
	s.Rendered()
	if ok, detail := s.Ready(); !ok || detail != "" {
		t.Fatalf("Ready() = %v, %q after every problem was resolved", ok, detail)
	}
}
