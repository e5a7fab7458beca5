package watch

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiterSpacesCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(5, 1)
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if err := l.Wait(context.Background()); err != nil {
					t.Error(err)
				}
				mu.Lock()
				at = append(at, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(at) != 20 {
			t.Fatalf("%d calls", len(at))
		}
		// One at once, then one every 200ms: the 20th at 3.8s.
		for i, d := range at {
			if want := time.Duration(i) * 200 * time.Millisecond; d != want {
				t.Errorf("call %d at %v, want %v", i, d, want)
			}
		}
		// Idle long enough, the bucket is full again: no wait.
		time.Sleep(time.Second)
		before := time.Now()
		if err := l.Wait(context.Background()); err != nil || time.Since(before) != 0 {
			t.Errorf("Wait after idling: %v, waited %v", err, time.Since(before))
		}
	})
}

func TestLimiterBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(20, 4)
		start := time.Now()
		for i := range 8 {
			if err := l.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := time.Duration(0)
			if i >= 4 {
				want = time.Duration(i-3) * 50 * time.Millisecond
			}
			if got := time.Since(start); got != want {
				t.Errorf("call %d at %v, want %v", i, got, want)
			}
		}
	})
}

func TestLimiterCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(1, 1)
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := l.Wait(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Wait = %v, want DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 100*time.Millisecond {
			t.Errorf("cancelled Wait returned after %v", got)
		}
		// The abandoned slot was given back: the next call waits for the
		// first's second, not for a second after that.
		start = time.Now()
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 900*time.Millisecond {
			t.Errorf("next Wait took %v, want 900ms", got)
		}
		done, cancelDone := context.WithCancel(context.Background())
		cancelDone()
		if err := l.Wait(done); err != context.Canceled {
			t.Errorf("Wait on a done context = %v", err)
		}
	})
}
