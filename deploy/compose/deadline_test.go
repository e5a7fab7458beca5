package compose

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// However long the images take to build, the containers get the whole wait
// budget, counted from the end of the build (issue 9 item 24).
func TestWaitBudgetStartsAfterTheBuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		const build = 5 * time.Minute // longer than the budget itself
		ctx, cancel := afterBuild(t.Context(), waitBudget, func(ctx context.Context) {
			if d, ok := ctx.Deadline(); ok {
				t.Errorf("the build has a deadline, %s after its start", d.Sub(start))
			}
			<-time.After(build) // the bubble's clock: no real wait
			if err := ctx.Err(); err != nil {
				t.Errorf("the build's context ended: %v", err)
			}
		})
		defer cancel()
		if err := ctx.Err(); err != nil {
			t.Fatalf("the wait's context ended before the wait began: %v", err)
		}
		d, ok := ctx.Deadline()
		if !ok || d.Sub(start) != build+waitBudget {
			t.Fatalf("wait deadline %s after the start (set %v), want %s: build, then the whole budget",
				d.Sub(start), ok, build+waitBudget)
		}
		if waitBudget != 3*time.Minute {
			t.Errorf("waitBudget = %s, want 3m", waitBudget)
		}
	})
}
