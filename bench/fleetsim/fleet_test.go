package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

func testOptions(t *testing.T) Options {
	// 30x, not faster: at 60x an answer delayed by a loaded CI machine
	// made a feed's view look older than the compressed interval.
	return Options{Speed: 30, TasksPerService: 10, MaxFileAgents: 8, Dir: t.TempDir(), Seed: 7, Setenv: t.Setenv}
}

// Every rotation reaches every task, with one value fetch per task per
// change, and a poll costs what SPEC §8 says: one GetParameters and five
// DescribeSecret.
func TestDirectFleetDeliversEveryRotation(t *testing.T) {
	sc := Scenario{Name: "t", N: 25, Span: 12 * time.Minute, RotateEvery: 2 * time.Minute, RotateUntil: 4 * time.Minute, Rotate: "secret"}
	r, err := Run(context.Background(), sc, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Rotations != 2 || r.Missed != 0 || len(r.Latencies) != 2*25 {
		t.Fatalf("rotations %d, missed %d, latencies %d; want 2, 0, 50", r.Rotations, r.Missed, len(r.Latencies))
	}
	if r.Services != 3 || r.FileAgents != 7 {
		t.Errorf("services %d, file agents %d; want 3 and 7 (every 4th of 25)", r.Services, r.FileAgents)
	}
	ok := func(op string) int { return r.Agents[op].Allowed }
	// Calls in flight when the span ends are not counted, so one cycle
	// may be counted in part.
	if p, d := ok("GetParameters"), ok("DescribeSecret"); p < 25 || d < 5*p-5 || d > 5*p+5 {
		t.Errorf("GetParameters %d, DescribeSecret %d: want 5 DescribeSecret per GetParameters, at least one poll per task", p, d)
	}
	// A task that polls between the two rotations fetches twice, one
	// that polls after both once: never more fetches than rotations seen.
	if n := ok("GetSecretValue"); n < 25 || n > 50 {
		t.Errorf("GetSecretValue %d, want 25..50 (one per task per change it saw)", n)
	}
	for op, c := range r.Agents {
		if c.Throttled != 0 {
			t.Errorf("%s: %d throttled", op, c.Throttled)
		}
	}
	if r.SignatureFailures != 0 {
		t.Errorf("%d signature failures", r.SignatureFailures)
	}
	if r.LogErrors != 0 {
		t.Errorf("%d error lines", r.LogErrors)
	}
	out := r.Row() + r.Detail()
	if strings.Contains(out, "value-") {
		t.Errorf("a secret value in the report:\n%s", out)
	}
}

// ECS task starts share Parameter Store's 40/s with the fleet: a burst far
// over it fails starts (all attempts throttled); the same starts spread
// under it fail none.
func TestTaskStartsThrottledOverQuota(t *testing.T) {
	for _, tt := range []struct {
		name   string
		burst  int
		spread time.Duration
		fail   bool
	}{
		{"under", 30, 10 * time.Second, false},
		{"over", 300, time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc := Scenario{Name: tt.name, Span: 20 * time.Second, Burst: tt.burst, BurstSpread: tt.spread}
			o := testOptions(t)
			// Parameter Store at 4 calls a second (burst 4): what the
			// simulator sends in a wall second, under the race detector
			// too, stays well above the scaled quota.
			o.Quotas = []awsfake.Quota{{Name: "ssm", Ops: []string{"GetParameters"}, Rate: 4, Burst: 4}}
			o.Speed = 5
			r, err := Run(context.Background(), sc, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.ECSStarts != tt.burst {
				t.Fatalf("%d starts, want %d", r.ECSStarts, tt.burst)
			}
			th := r.ECS["GetParameters"].Throttled
			switch {
			case !tt.fail && (r.ECSFailed != 0 || th != 0):
				t.Errorf("%d failed starts, %d throttled attempts; want 0", r.ECSFailed, th)
			case tt.fail && (r.ECSFailed == 0 || r.ECSFailed == r.ECSStarts || th < 4*r.ECSFailed):
				t.Errorf("%d of %d starts failed with %d throttled attempts; want some, not all, each after 5 throttled attempts",
					r.ECSFailed, r.ECSStarts, th)
			}
		})
	}
}

// buildAgent builds cmd/agent, the feed scenarios' watcher.
func buildAgent(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the agent")
	}
	bin := filepath.Join(t.TempDir(), "agent")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// With the feed, agents make no polling call at all, fetch each change
// once, and every rotation reaches every task; with the watcher killed
// midway, the rotations after it still reach every task, by direct
// polling.
func TestFeedFleet(t *testing.T) {
	bin := buildAgent(t)
	for _, tt := range []struct {
		name string
		kill time.Duration
	}{
		{"watcher alive", 0},
		{"watcher killed", 3*time.Minute + 30*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t)
			o.Agent = bin
			sc := Scenario{Name: "t", N: 20, Feed: true, Span: 12 * time.Minute, RotateEvery: 2 * time.Minute,
				RotateUntil: 6 * time.Minute, Rotate: "secret", KillFeedAt: tt.kill}
			r, err := Run(context.Background(), sc, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rotations != 3 || r.Missed != 0 || len(r.Latencies) != 3*20 {
				t.Fatalf("rotations %d, missed %d, latencies %d; want 3, 0, 60\n%s", r.Rotations, r.Missed, len(r.Latencies), r.Detail())
			}
			polls := r.Agents["GetParameters"].Allowed + r.Agents["DescribeSecret"].Allowed
			switch {
			case tt.kill == 0 && (polls != 0 || r.Agents["GetSecretValue"].Allowed != 3*20):
				t.Errorf("agents polled %d times and read %d values; want 0 and 60 (one per task per rotation)\n%s",
					polls, r.Agents["GetSecretValue"].Allowed, r.Detail())
			case tt.kill > 0 && polls == 0:
				t.Errorf("no direct poll after the watcher died\n%s", r.Detail())
			}
			if r.Watcher["DescribeSecret"].Allowed == 0 || r.Watcher["GetSecretValue"].Allowed != 0 {
				t.Errorf("watcher: %+v; want DescribeSecret, never GetSecretValue", r.Watcher)
			}
			if !strings.Contains(r.WatcherMem, "watcher RSS") {
				t.Errorf("watcher memory %q", r.WatcherMem)
			}
		})
	}
}
