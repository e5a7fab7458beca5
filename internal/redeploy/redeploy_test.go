package redeploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"
)

const (
	testCluster = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod"
	testTask    = "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef"
	testPath    = LockPrefix + "prod/web"
)

func newTest(t *testing.T, s *fakeSSM, e *fakeECS, owner string, mod func(*Options)) *Redeployer {
	t.Helper()
	o := Options{SSM: s, ECS: e, Cluster: testCluster, Service: "web", Owner: owner, TakeoverAfter: takeoverAfter}
	if mod != nil {
		mod(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLockPath(t *testing.T) {
	long := strings.Repeat("s", 255)
	for _, tc := range []struct {
		name, cluster, service, want string
	}{
		{"names", "prod", "web", testPath},
		{"ARNs shortened to names, so a name and an ARN share one lock", testCluster, "arn:aws:ecs:eu-west-1:111122223333:service/prod/web", testPath},
		{"a part SSM would reject is hashed", "prod", "web app", LockPrefix + "prod/" + part("web app")},
		{"a long part is hashed", "prod", long, LockPrefix + "prod/" + part(long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LockPath(tc.cluster, tc.service); got != tc.want {
				t.Errorf("LockPath(%q, %q) = %q, want %q", tc.cluster, tc.service, got, tc.want)
			}
		})
	}
	if p := part("web app"); !strings.HasPrefix(p, "h-") || len(p) != 34 {
		t.Errorf("part(%q) = %q, want h- and 32 hex digits", "web app", p)
	}
}

func TestNewErrors(t *testing.T) {
	ok := Options{SSM: newFakeSSM(t, 0), ECS: newFakeECS(t, time.Now()), Cluster: "prod", Service: "web", Owner: testTask}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no SSM", func(o *Options) { o.SSM = nil }, "redeploy: no SSM client"},
		{"no ECS", func(o *Options) { o.ECS = nil }, "redeploy: no ECS client"},
		{"no cluster", func(o *Options) { o.Cluster = "" }, "redeploy: cluster is empty (not in the task metadata and not configured)"},
		{"no service", func(o *Options) { o.Service = "" }, "redeploy: service is empty: the task is not part of an ECS service (the task metadata has no ServiceName) and none is configured"},
		{"no owner", func(o *Options) { o.Owner = "" }, "redeploy: owner (task ARN) is empty"},
		{"takeover too short", func(o *Options) { o.TakeoverAfter = time.Second }, "redeploy: takeover delay 1s is below the minimum 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			if _, err := New(o); err == nil || err.Error() != tc.want {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCoveredByLockRecord: an actor whose change the lock record's
// deployment postdates returns after one GetParametersByPath: no ECS call,
// no write.
func TestCoveredByLockRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		e.noUpdate, s.noDelete = true, true
		deployed := time.Now()
		s.set(testPath+"/4", lockValue{Owner: "watcher", State: stateDone, Deployment: "ecs-svc/9", DeploymentCreated: deployed}, deployed)
		o, err := newTest(t, s, e, testTask, nil).Ensure(t.Context(), deployed.Add(-time.Second))
		if err != nil || o != Covered {
			t.Fatalf("Ensure = %q, %v; want %q", o, err, Covered)
		}
		if n, m, d := s.calls.n("GetParametersByPath"), s.calls.n("PutParameter"), e.calls.n("DescribeServices"); n != 1 || m != 0 || d != 0 {
			t.Errorf("GetParametersByPath %d, PutParameter %d, DescribeServices %d; want 1, 0, 0", n, m, d)
		}
	})
}

// TestAlreadyDeployedUnderLock: no record, but DescribeServices shows a
// deployment newer than the change (a pipeline's): no UpdateService, and
// the record left names that deployment.
func TestAlreadyDeployedUnderLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now())
		e.noUpdate = true
		at := time.Now().Add(-time.Minute)
		o, err := newTest(t, s, e, testTask, nil).Ensure(t.Context(), at)
		if err != nil || o != AlreadyDeployed {
			t.Fatalf("Ensure = %q, %v; want %q", o, err, AlreadyDeployed)
		}
		v, ok := s.get(testPath + "/1")
		if !ok || v.State != stateDone || v.Deployment != "ecs-svc/0" || !v.DeploymentCreated.Equal(time.Now()) {
			t.Errorf("lock record = %+v (exists %v), want done naming ecs-svc/0", v, ok)
		}
	})
}

// TestLostCreateAnswer: the create succeeded but its answer was lost and
// the SDK's retry got ParameterAlreadyExists: the actor recognizes its own
// record and deploys once.
func TestLostCreateAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		s.echoCreate = true
		o, err := newTest(t, s, e, testTask, nil).Ensure(t.Context(), time.Now())
		if err != nil || o != Deployed || len(e.deployed()) != 1 {
			t.Fatalf("Ensure = %q, %v, %d deployments; want %q and 1", o, err, len(e.deployed()), Deployed)
		}
	})
}

// TestBusyHolderBoundsTheWait: a holder that never finishes makes Ensure
// return ErrBusy after MaxWait, having deployed nothing; it is bounded so
// the refresh loop is not blocked, and the loop retries.
func TestBusyHolderBoundsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		e.noUpdate = true
		s.set(testPath+"/1", lockValue{Owner: "other", State: stateHeld}, time.Now())
		start := time.Now()
		_, err := newTest(t, s, e, testTask, func(o *Options) { o.MaxWait = 5 * time.Second }).Ensure(t.Context(), time.Now())
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("Ensure: %v, want ErrBusy", err)
		}
		if want := "redeploy: service web: lock " + testPath + "/1 held by other for 5s: another actor holds the redeploy lock"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("Ensure returned after %s, want 5s (MaxWait)", took)
		}
		if n := s.calls.n("PutParameter"); n != 0 {
			t.Errorf("PutParameter called %d times, want 0", n)
		}
	})
}

// TestStopEndsTheWait: SIGTERM (ctx) ends a wait on the lock at once.
func TestStopEndsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		s.set(testPath+"/1", lockValue{Owner: "other", State: stateHeld}, time.Now())
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(1500*time.Millisecond, cancel)
		start := time.Now()
		_, err := newTest(t, s, e, testTask, nil).Ensure(ctx, time.Now())
		if !errors.Is(err, context.Canceled) || time.Since(start) != 1500*time.Millisecond {
			t.Errorf("Ensure: %v after %s, want context.Canceled after 1.5s", err, time.Since(start))
		}
	})
}

// TestTakeoverIsAtomic: the holder of generation 1 died; two actors find
// it expired at the same moment. Exactly one creates generation 2 and
// deploys; the other finds the deployment in the record it leaves.
func TestTakeoverIsAtomic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 10*time.Millisecond), newFakeECS(t, time.Now().Add(-time.Hour))
		e.updateLatency = time.Second
		at := time.Now()
		s.set(testPath+"/1", lockValue{Owner: "dead", State: stateHeld}, time.Now())
		time.Sleep(takeoverAfter) // the fake clock: the record is now expired
		outcomes := make(chan Outcome, 2)
		for _, owner := range []string{"a", "b"} {
			go func() {
				o, err := newTest(t, s, e, owner, nil).Ensure(t.Context(), at)
				if err != nil {
					t.Errorf("%s: %v", owner, err)
				}
				outcomes <- o
			}()
		}
		got := map[Outcome]int{<-outcomes: 1}
		got[<-outcomes]++
		if want := map[Outcome]int{TookOver: 1, Covered: 1}; !sameCounts(got, want) {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		if n := e.calls.n("UpdateService"); n != 1 {
			t.Errorf("UpdateService called %d times, want 1", n)
		}
		if names := s.names(); len(names) != 1 || names[0] != testPath+"/2" {
			t.Errorf("lock records %q, want only generation 2 (the dead holder's deleted)", names)
		}
	})
}

// TestStaleViewYields: an actor that creates a generation below one that
// already exists (its listing was stale) deletes its record and does not
// act; the newer round's deployment covers the change.
func TestStaleViewYields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		e.noUpdate = true
		at := time.Now()
		s.onCreate = func(name, _ string) {
			if name == testPath+"/1" { // meanwhile a newer round finished
				s.set(testPath+"/2", lockValue{Owner: "other", State: stateDone, Deployment: "ecs-svc/7", DeploymentCreated: at.Add(time.Second)}, time.Now())
			}
		}
		o, err := newTest(t, s, e, testTask, nil).Ensure(t.Context(), at)
		if err != nil || o != Covered {
			t.Fatalf("Ensure = %q, %v; want %q", o, err, Covered)
		}
		if names := s.names(); len(names) != 1 || names[0] != testPath+"/2" {
			t.Errorf("lock records %q, want only generation 2", names)
		}
	})
}

// TestRejectedUpdateReleasesLock: UpdateService rejected (AccessDenied:
// nothing started) marks the record free, so the retry (after the fix of
// the role) proceeds at once instead of waiting out the takeover delay.
func TestRejectedUpdateReleasesLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		e.updateErr = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized", Fault: smithy.FaultClient}
		r := newTest(t, s, e, testTask, nil)
		at := time.Now()
		_, err := r.Ensure(t.Context(), at)
		if want := "redeploy: UpdateService web in cluster " + testCluster + ": api error AccessDeniedException: not authorized"; err == nil || err.Error() != want {
			t.Fatalf("Ensure: %v, want %q", err, want)
		}
		if v, _ := s.get(testPath + "/1"); v.State != stateFree {
			t.Errorf("record state %q, want %q", v.State, stateFree)
		}
		e.updateErr = nil
		start := time.Now()
		if o, err := r.Ensure(t.Context(), at); err != nil || o != Deployed || time.Since(start) != 0 {
			t.Errorf("retry: %q, %v after %s; want %q at once", o, err, time.Since(start), Deployed)
		}
		if names := s.names(); len(names) != 1 || names[0] != testPath+"/2" {
			t.Errorf("lock records %q, want only generation 2", names)
		}
	})
}

// TestLockRecordsBoundedByServices: 25 rotations, each acted on by an
// in-task actor and a watcher, leave one lock record per service, never
// more than two at any time, and one deployment per rotation.
func TestLockRecordsBoundedByServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 5*time.Millisecond), newFakeECS(t, time.Now().Add(-time.Hour))
		e.updateLatency = 300 * time.Millisecond
		var mu sync.Mutex
		peak := 0
		s.onCreate = func(string, string) {
			mu.Lock()
			defer mu.Unlock()
			peak = max(peak, len(s.names()))
		}
		task := newTest(t, s, e, testTask, nil)
		watcher := newTest(t, s, e, "watcher", func(o *Options) { o.Cluster = "prod" })
		const rotations = 25
		for i := range rotations {
			at := time.Now() // AWS dates the rotation
			time.Sleep(time.Second)
			done := make(chan error, 2)
			for _, r := range []*Redeployer{task, watcher} {
				go func() { _, err := r.Ensure(t.Context(), at); done <- err }()
			}
			for range 2 {
				if err := <-done; err != nil {
					t.Fatalf("rotation %d: %v", i, err)
				}
			}
			if names := s.names(); len(names) != 1 {
				t.Fatalf("after rotation %d: lock records %q, want 1", i, names)
			}
		}
		if n := len(e.deployed()); n != rotations {
			t.Errorf("%d deployments for %d rotations, want one each", n, rotations)
		}
		mu.Lock()
		defer mu.Unlock()
		if peak > 2 {
			t.Errorf("up to %d lock records at once, want at most 2", peak)
		}
		if names := s.names(); names[0] != fmt.Sprintf("%s/%d", testPath, rotations) {
			t.Errorf("lock record left: %q, want generation %d", names, rotations)
		}
	})
}

// TestDryRunWritesNothing: a dry run reads and logs, and never calls
// PutParameter, DeleteParameter or UpdateService.
func TestDryRunWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now().Add(-time.Hour))
		e.noUpdate, s.noDelete = true, true
		s.set(testPath+"/3", lockValue{Owner: "dead", State: stateHeld}, time.Now().Add(-2*takeoverAfter))
		o, err := newTest(t, s, e, testTask, func(o *Options) { o.DryRun = true }).Ensure(t.Context(), time.Now())
		if err != nil || o != WouldDeploy {
			t.Fatalf("Ensure = %q, %v; want %q", o, err, WouldDeploy)
		}
		if n := s.calls.n("PutParameter"); n != 0 {
			t.Errorf("PutParameter called %d times in a dry run", n)
		}
	})
}

func TestNoDate(t *testing.T) {
	s, e := newFakeSSM(t, 0), newFakeECS(t, time.Now())
	if _, err := newTest(t, s, e, testTask, nil).Ensure(t.Context(), time.Time{}); err == nil || err.Error() != "redeploy: the change has no date" {
		t.Errorf("Ensure(zero) = %v", err)
	}
}
