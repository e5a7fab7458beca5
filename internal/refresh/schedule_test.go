package refresh

import (
	"testing"
	"time"
)

// fixedRand returns the values in turn, then repeats the last.
func fixedRand(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

func TestScheduleJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		s := NewSchedule(5*time.Minute, 30*time.Second, fixedRand(r))
		first := s.First()
		if first < 0 || first >= 5*time.Minute {
			t.Errorf("rand %v: first wait %s outside [0, 5m)", r, first)
		}
		next := s.Next(Succeeded)
		if next < 4*time.Minute+30*time.Second || next >= 5*time.Minute+30*time.Second {
			t.Errorf("rand %v: wait %s outside 5m ± 30s", r, next)
		}
	}
	if got := NewSchedule(time.Minute, 0, fixedRand(0.25)).First(); got != 15*time.Second {
		t.Errorf("first = %s, want 15s", got)
	}
}

func TestScheduleBackoffGrowsAndResets(t *testing.T) {
	s := NewSchedule(time.Minute, 0, fixedRand(0.999999))
	var got []time.Duration
	for range 9 {
		got = append(got, s.Next(Failed).Round(time.Millisecond))
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff waits %v, want %v", got, want)
		}
	}
	// Lower bound: half the step.
	s = NewSchedule(time.Minute, 0, fixedRand(0))
	if d := s.Next(Failed); d != 500*time.Millisecond {
		t.Errorf("lowest first backoff %s, want 500ms", d)
	}
	if d := s.Next(Succeeded); d != time.Minute {
		t.Errorf("after success %s, want the interval", d)
	}
	if d := s.Next(Failed); d != 500*time.Millisecond {
		t.Errorf("backoff after a success %s, want reset to 500ms", d)
	}
}

func TestScheduleThrottlingGrowsThenShrinksSlowly(t *testing.T) {
	s := NewSchedule(10*time.Second, 0, fixedRand(0.5))
	var grown []time.Duration
	for range 6 {
		grown = append(grown, s.Next(Throttled))
	}
	want := []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 160 * time.Second, 160 * time.Second}
	for i := range want {
		if grown[i] != want[i] {
			t.Fatalf("throttled waits %v, want %v (capped at 16x)", grown, want)
		}
	}
	var shrink []time.Duration
	for s.Interval() > s.Base {
		shrink = append(shrink, s.Next(Succeeded))
	}
	// 160s back to 10s at 80% a cycle: slow on purpose.
	if len(shrink) != 13 || shrink[0] != 128*time.Second || shrink[len(shrink)-1] != 10*time.Second {
		t.Errorf("recovery took %d cycles: %v", len(shrink), shrink)
	}
}

func TestScheduleJitterScalesWithGrownInterval(t *testing.T) {
	s := NewSchedule(10*time.Second, 2*time.Second, fixedRand(0))
	if d := s.Next(Throttled); d != 16*time.Second {
		t.Errorf("grown wait %s, want 20s - 4s", d)
	}
}
