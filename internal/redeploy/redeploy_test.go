package redeploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

const (
	testCluster = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod"
	testTask    = "arn:aws:ecs:eu-west-1:111122223333:task/prod/0123456789abcdef"
)

func newTest(t *testing.T, s *fakeSSM, e *fakeECS, task string) *Redeployer {
	t.Helper()
	r, err := New(Options{SSM: s, ECS: e, Cluster: testCluster, Service: "web", TaskARN: task, TakeoverAfter: takeoverAfter})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChangeOf(t *testing.T) {
	base := ChangeOf(map[string]string{"db": "4", "api": "v1"}).ID
	for _, tc := range []struct {
		name     string
		versions map[string]string
		same     bool
	}{
		{"same versions", map[string]string{"api": "v1", "db": "4"}, true},
		{"one version moved", map[string]string{"db": "5", "api": "v1"}, false},
		{"a secret more", map[string]string{"db": "4", "api": "v1", "tls": "1"}, false},
		{"name and version not confused", map[string]string{"db=4": "", "api": "v1"}, false},
		{"empty", map[string]string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := ChangeOf(tc.versions).ID
			if (id == base) != tc.same {
				t.Errorf("ChangeOf(%v) = %s, base %s: same = %v, want %v", tc.versions, id, base, id == base, tc.same)
			}
			if len(id) != 32 || part(id) != id {
				t.Errorf("id %q is not 32 characters valid in an SSM name", id)
			}
		})
	}
}

func TestLockNames(t *testing.T) {
	long := strings.Repeat("s", 255)
	for _, tc := range []struct {
		name, cluster, service, want string
	}{
		{"names", "prod", "web", LockPrefix + "prod/web/"},
		{"ARNs shortened to names", testCluster, "arn:aws:ecs:eu-west-1:111122223333:service/prod/web", LockPrefix + "prod/web/"},
		{"invalid characters hashed", "prod", "web app", LockPrefix + "prod/h-"},
		{"dot-dot hashed", "..", "web", LockPrefix + "h-"},
		{"long names hashed", "prod", long, LockPrefix + "prod/h-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lockDir(tc.cluster, tc.service)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("lockDir(%q, %q) = %q, want prefix %q", tc.cluster, tc.service, got, tc.want)
			}
			if strings.Count(got, "/") != 5 || len(got) > 300 {
				t.Errorf("lockDir(%q, %q) = %q: want 4 levels and a short name", tc.cluster, tc.service, got)
			}
		})
	}
	if lockDir("prod", "web app") == lockDir("prod", "web_app") {
		t.Error(`"web app" and "web_app" share locks`)
	}
}

func TestNewErrors(t *testing.T) {
	ok := Options{SSM: newFakeSSM(t, 0), ECS: newFakeECS(t, time.Now()), Cluster: "prod", Service: "web", TaskARN: testTask}
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"no SSM", func(o *Options) { o.SSM = nil }, "redeploy: no SSM client"},
		{"no ECS", func(o *Options) { o.ECS = nil }, "redeploy: no ECS client"},
		{"no cluster", func(o *Options) { o.Cluster = "" }, "redeploy: cluster is empty"},
		{"standalone task", func(o *Options) { o.Service = "" }, "redeploy: service is empty: the task is not part of an ECS service"},
		{"no task ARN", func(o *Options) { o.TaskARN = "" }, "redeploy: task ARN is empty"},
		{"takeover too short", func(o *Options) { o.TakeoverAfter = time.Second }, "redeploy: takeover delay 1s is below the minimum 2s"},
		{"negative retention", func(o *Options) { o.Retention = -time.Hour }, "redeploy: retention -1h0m0s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.modify(&o)
			if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("New() error = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}

// TestAlreadyDeployed: a task that sees the change after a deployment newer
// than the change exists does not deploy; a task later still stops at the
// done lock after one read.
func TestAlreadyDeployed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rotated := time.Now()
		time.Sleep(time.Minute) // a pipeline deployed after the rotation
		s, e := newFakeSSM(t, ssmLatency), newFakeECS(t, time.Now())
		s.noDelete, e.noUpdate = true, true
		change := ChangeOf(newVersions)
		change.At = rotated // the version's creation time

		time.Sleep(time.Minute)
		got, err := newTest(t, s, e, testTask).Redeploy(t.Context(), change)
		if got != AlreadyDeployed || err != nil {
			t.Fatalf("Redeploy() = %q, %v; want %q", got, err, AlreadyDeployed)
		}
		if v, _ := s.get(LockPrefix + "prod/web/" + change.ID + "/1"); v.State != stateDone || v.Result != string(AlreadyDeployed) || v.Deployment != "ecs-svc/0" {
			t.Errorf("lock = %+v, want done, already-deployed, ecs-svc/0", v)
		}

		late := newTest(t, s, e, testTask+"-late")
		before := s.calls.n("GetParameter")
		change.At = time.Time{} // observed now
		if got, err := late.Redeploy(t.Context(), change); got != LostElection || err != nil {
			t.Errorf("late task: Redeploy() = %q, %v; want %q", got, err, LostElection)
		}
		if n := s.calls.n("GetParameter") - before; n != 1 || s.calls.n("PutParameter") != 2 || e.calls.n("DescribeServices") != 1 {
			t.Errorf("late task: %d GetParameter, %d PutParameter and %d DescribeServices in all; want 1 more read only",
				n, s.calls.n("PutParameter"), e.calls.n("DescribeServices"))
		}
	})
}

// TestLostCreateAnswer: the SDK retried a create whose first answer was
// lost and got ParameterAlreadyExists for this task's own lock.
func TestLostCreateAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, ssmLatency), newFakeECS(t, time.Now().Add(-time.Hour))
		s.echoCreate, s.noDelete = true, true
		got, err := newTest(t, s, e, testTask).Redeploy(t.Context(), ChangeOf(newVersions))
		if got != Deployed || err != nil || e.calls.n("UpdateService") != 1 {
			t.Errorf("Redeploy() = %q, %v with %d UpdateService; want %q with 1", got, err, e.calls.n("UpdateService"), Deployed)
		}
	})
}

// TestStaleLocks: locks whose holders are gone are taken over generation by
// generation, up to MaxGenerations; a lock value that is not ours counts as
// held.
func TestStaleLocks(t *testing.T) {
	change := ChangeOf(newVersions)
	for _, tc := range []struct {
		name  string
		stale int // generations held by dead tasks
		value string
		// deployed: the dead holder's UpdateService went through a second
		// after it took the lock (it died before marking the lock done).
		deployed bool
		want     Outcome
		err      string
	}{
		{"one dead holder", 1, "", false, TookOver, ""},
		{"a value not ours", 1, "not json", false, TookOver, ""},
		{"dead holder had deployed", 1, "", true, AlreadyDeployed, ""},
		{"every generation dead", MaxGenerations, "", false, "", "redeploy: service web: 5 lock holders in turn did not finish change " + change.ID + "; giving up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, e := newFakeSSM(t, ssmLatency), newFakeECS(t, time.Now().Add(-time.Hour))
				s.noDelete = true
				r := newTest(t, s, e, testTask)
				for gen := 1; gen <= tc.stale; gen++ {
					s.set(r.lockName(change.ID, gen), lockValue{Owner: "dead", State: stateHeld}, time.Now())
					if tc.value != "" {
						s.mu.Lock()
						s.params[r.lockName(change.ID, gen)] = param{value: tc.value, modified: time.Now()}
						s.mu.Unlock()
					}
				}
				if tc.deployed {
					e.noUpdate = true
					time.Sleep(time.Second)
					e.mu.Lock()
					e.deployments = append(e.deployments, ecstypes.Deployment{Id: aws.String("ecs-svc/1"), Status: aws.String("PRIMARY"), CreatedAt: aws.Time(time.Now())})
					e.mu.Unlock()
				}
				time.Sleep(takeoverAfter)
				// This task noticed the change only now, after that
				// deployment: the lock, not its own observation, dates it.
				got, err := r.Redeploy(t.Context(), change)
				if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
					t.Errorf("Redeploy() = %q, %v; want %q, %q", got, err, tc.want, tc.err)
				}
			})
		})
	}
}

// TestCleanup: the task that deploys deletes the previous change's locks
// once they are older than the retention, and only then.
func TestCleanup(t *testing.T) {
	prev := ChangeOf(oldVersions).ID
	for _, tc := range []struct {
		name        string
		gens        int
		age         time.Duration
		wantDeleted int
	}{
		{"older than the retention", 2, DefaultRetention + time.Minute, 2},
		{"younger than the retention", 1, DefaultRetention - time.Minute, 0},
		{"none", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, e := newFakeSSM(t, ssmLatency), newFakeECS(t, time.Now().Add(-time.Hour))
				r := newTest(t, s, e, testTask)
				for gen := 1; gen <= tc.gens; gen++ {
					s.set(r.lockName(prev, gen), lockValue{Owner: "old", State: stateDone}, time.Now().Add(-tc.age))
				}
				change := ChangeOf(newVersions)
				change.Previous = prev
				if got, err := r.Redeploy(context.Background(), change); got != Deployed || err != nil {
					t.Fatalf("Redeploy() = %q, %v", got, err)
				}
				if n := s.calls.n("DeleteParameter"); n != tc.wantDeleted {
					t.Errorf("%d DeleteParameter calls, want %d", n, tc.wantDeleted)
				}
				for gen := 1; gen <= tc.gens; gen++ {
					if _, ok := s.get(r.lockName(prev, gen)); ok == (tc.wantDeleted > 0) {
						t.Errorf("generation %d of the previous lock: exists %v", gen, ok)
					}
				}
				if _, ok := s.get(r.lockName(change.ID, 1)); !ok {
					t.Error("the lock of the change itself was deleted")
				}
			})
		})
	}
}

// TestSimultaneous: tasks that notice at the very same instant all find no
// lock and all try to create it; exactly one wins.
func TestSimultaneous(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, e := newFakeSSM(t, ssmLatency), newFakeECS(t, time.Now().Add(-time.Hour))
		s.noDelete = true
		e.updateLatency = updateLatency
		const n = 20
		outcomes := make(chan Outcome, n)
		for i := range n {
			go func() {
				o, err := newTest(t, s, e, fmt.Sprintf("%s-%d", testTask, i)).Redeploy(t.Context(), ChangeOf(newVersions))
				if err != nil {
					t.Error(err)
				}
				outcomes <- o
			}()
		}
		got := map[Outcome]int{}
		for range n {
			got[<-outcomes]++
		}
		if want := map[Outcome]int{Deployed: 1, LostElection: n - 1}; !sameCounts(got, want) || e.calls.n("UpdateService") != 1 {
			t.Errorf("outcomes %v and %d UpdateService calls; want %v and 1", got, e.calls.n("UpdateService"), want)
		}
		if p := s.calls.n("PutParameter"); p != n+1 {
			t.Errorf("%d PutParameter calls, want %d creates and 1 mark", p, n)
		}
	})
}
