package redeploy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskmeta"
)

// The simulated control plane: UpdateService is slow enough that tasks
// noticing a rotation within noticeWindow would all pass a check-then-act.
const (
	fleetSize       = 200
	trials          = 20
	noticeWindow    = 2 * time.Second // every task notices the rotation within this
	ssmLatency      = 20 * time.Millisecond
	describeLatency = 150 * time.Millisecond
	updateLatency   = 1200 * time.Millisecond
	takeoverAfter   = 30 * time.Second
)

var (
	oldVersions = map[string]string{"db": "3", "api": "f2c1b6e0-0000-4000-8000-000000000001"}
	newVersions = map[string]string{"db": "4", "api": "f2c1b6e0-0000-4000-8000-000000000001"}
)

// fleet starts n tasks' metadata endpoints (one httptest server, one URI per
// task, as ECS gives each container its own) and reads each task's identity
// through taskmeta.Get, as the agent does. It runs outside any bubble.
func fleet(t *testing.T, n int) []taskmeta.Task {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/v4/")
		id, ok2 := strings.CutSuffix(id, "/task")
		if !ok || !ok2 || id == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"Cluster":"arn:aws:ecs:eu-west-1:111122223333:cluster/prod","TaskARN":"arn:aws:ecs:eu-west-1:111122223333:task/prod/%s","ServiceName":"web","Family":"web","KnownStatus":"RUNNING"}`, id)
	}))
	defer srv.Close()
	tasks := make([]taskmeta.Task, n)
	seen := map[string]bool{}
	for i := range tasks {
		env := map[string]string{taskmeta.EnvURI: fmt.Sprintf("%s/v4/%032x", srv.URL, uint64(i)*0x9e3779b97f4a7c15)}
		task, err := taskmeta.Get(t.Context(), func(k string) string { return env[k] }, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if seen[task.TaskARN] {
			t.Fatalf("task %d: ARN %s not unique", i, task.TaskARN)
		}
		seen[task.TaskARN] = true
		tasks[i] = task
	}
	return tasks
}

// trial is one rotation noticed by a fleet, with fresh fakes.
type trial struct {
	ssm    *fakeSSM
	ecs    *fakeECS
	start  time.Time     // the rotation
	window time.Duration // every task notices the rotation within this

	mu       sync.Mutex
	noticed  time.Time // the first task noticed the rotation
	outcomes map[Outcome]int
	errs     []error
	cancel   map[string]context.CancelFunc // "kills" a task, by task ARN
	lockAt   map[string]time.Time          // when each lock was created
}

// newTrial must run inside a bubble.
func newTrial(t *testing.T) *trial {
	start := time.Now()
	tr := &trial{
		ssm: newFakeSSM(t, ssmLatency), ecs: newFakeECS(t, start.Add(-time.Hour)), start: start, window: noticeWindow,
		outcomes: map[Outcome]int{}, cancel: map[string]context.CancelFunc{}, lockAt: map[string]time.Time{},
	}
	tr.ecs.describeLatency, tr.ecs.updateLatency = describeLatency, updateLatency
	tr.ssm.onCreate = func(name, _ string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.lockAt[name] = time.Now()
	}
	return tr
}

// act is what one task does about the rotation.
type act func(ctx context.Context, task taskmeta.Task, rnd func() float64, ssm SSMClient, ecs ECSClient) (Outcome, error)

// run lets every task notice the rotation at a random moment of the notice
// window, act, and returns when all are done.
func (tr *trial) run(tasks []taskmeta.Task, seed uint64, do act) {
	ctxs := make([]context.Context, len(tasks))
	for i, task := range tasks {
		var cancel context.CancelFunc
		ctxs[i], cancel = context.WithCancel(context.Background())
		tr.cancel[task.TaskARN] = cancel
	}
	var wg sync.WaitGroup
	for i, task := range tasks {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() {
			defer tr.cancel[task.TaskARN]()
			time.Sleep(time.Duration(rng.Float64() * float64(tr.window))) // its next poll
			tr.mu.Lock()
			if tr.noticed.IsZero() || time.Now().Before(tr.noticed) {
				tr.noticed = time.Now()
			}
			tr.mu.Unlock()
			o, err := do(ctxs[i], task, rng.Float64, tr.ssm, tr.ecs)
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if err != nil {
				tr.errs = append(tr.errs, err)
				return
			}
			tr.outcomes[o]++
		})
	}
	wg.Wait()
}

// locked is the action under test: a Redeployer built from the task's own
// metadata, acting on the change it observed now.
var locked = lockedWith(takeoverAfter)

func lockedWith(takeover time.Duration) act {
	return func(ctx context.Context, task taskmeta.Task, rnd func() float64, s SSMClient, e ECSClient) (Outcome, error) {
		r, err := New(Options{SSM: s, ECS: e, Cluster: task.Cluster, Service: task.ServiceName, TaskARN: task.TaskARN,
			TakeoverAfter: takeover, Rand: rnd})
		if err != nil {
			return "", err
		}
		change := ChangeOf(newVersions)
		change.Previous = ChangeOf(oldVersions).ID
		return r.Redeploy(ctx, change)
	}
}

// naive is check-then-act without the lock: skip if a deployment newer
// than the change exists, else deploy.
func naive(ctx context.Context, task taskmeta.Task, _ func() float64, _ SSMClient, e ECSClient) (Outcome, error) {
	at := time.Now()
	out, err := e.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(task.Cluster), Services: []string{task.ServiceName}})
	if err != nil {
		return "", err
	}
	if d := newestOf(out.Services[0].Deployments); d.CreatedAt.After(at) {
		return AlreadyDeployed, nil
	}
	if _, err := e.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(task.Cluster), Service: aws.String(task.ServiceName), ForceNewDeployment: true}); err != nil {
		return "", err
	}
	return Deployed, nil
}

type stats struct {
	ops          map[string][]int
	toUpdate     []time.Duration // rotation to the UpdateService call that deployed
	noticeUpdate []time.Duration // first notice to that call
	toDeployment []time.Duration // rotation to the deployment's creation
	settled      []time.Duration // rotation to the last task returning
}

func (s *stats) add(tr *trial, settled time.Duration) {
	if s.ops == nil {
		s.ops = map[string][]int{}
	}
	for _, op := range []string{"GetParameter", "PutParameter", "DeleteParameter"} {
		s.ops[op] = append(s.ops[op], tr.ssm.calls.n(op))
	}
	for _, op := range []string{"DescribeServices", "UpdateService"} {
		s.ops[op] = append(s.ops[op], tr.ecs.calls.n(op))
	}
	s.ops["peak GetParameter/s"] = append(s.ops["peak GetParameter/s"], tr.ssm.calls.peak("GetParameter", time.Second))
	s.ops["peak PutParameter/s"] = append(s.ops["peak PutParameter/s"], tr.ssm.calls.peak("PutParameter", time.Second))
	if u := tr.ecs.calls.times("UpdateService"); len(u) > 0 {
		s.toUpdate = append(s.toUpdate, u[len(u)-1].Sub(tr.start))
		s.noticeUpdate = append(s.noticeUpdate, u[len(u)-1].Sub(tr.noticed))
	}
	if d := tr.ecs.deployed(); len(d) > 0 {
		s.toDeployment = append(s.toDeployment, d[0].CreatedAt.Sub(tr.start))
	}
	s.settled = append(s.settled, settled)
}

func (s *stats) log(t *testing.T, what string) {
	for _, op := range []string{"PutParameter", "GetParameter", "DeleteParameter", "DescribeServices", "UpdateService", "peak GetParameter/s", "peak PutParameter/s"} {
		n := s.ops[op]
		t.Logf("%s: %-20s min %4d  max %4d  mean %6.1f", what, op, slices.Min(n), slices.Max(n), mean(n))
	}
	for _, d := range []struct {
		name string
		ds   []time.Duration
	}{{"rotation→UpdateService call", s.toUpdate}, {"first notice→UpdateService call", s.noticeUpdate}, {"rotation→deployment created", s.toDeployment}, {"rotation→last task returns", s.settled}} {
		if len(d.ds) > 0 {
			t.Logf("%s: %-32s min %8s  max %8s (fake time)", what, d.name, slices.Min(d.ds).Round(time.Millisecond), slices.Max(d.ds).Round(time.Millisecond))
		}
	}
}

func mean(n []int) float64 {
	sum := 0
	for _, x := range n {
		sum += x
	}
	return float64(sum) / float64(len(n))
}

// TestFleetExactlyOnce: 200 tasks notice one rotation within 2s while
// UpdateService takes 1.2s; in each of 20 trials exactly one of them calls
// UpdateService.
func TestFleetExactlyOnce(t *testing.T) {
	tasks := fleet(t, fleetSize)
	var s stats
	for i := range trials {
		t.Run(fmt.Sprintf("trial%02d", i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTrial(t)
				tr.ssm.noDelete = true // the previous change has no lock here
				tr.run(tasks, uint64(i), locked)
				settled := time.Since(tr.start)

				if n := tr.ecs.calls.n("UpdateService"); n != 1 {
					t.Errorf("UpdateService called %d times, want 1", n)
				}
				if len(tr.errs) > 0 {
					t.Errorf("%d tasks failed, first: %v", len(tr.errs), tr.errs[0])
				}
				want := map[Outcome]int{Deployed: 1, LostElection: fleetSize - 1}
				if !sameCounts(tr.outcomes, want) {
					t.Errorf("outcomes %v, want %v", tr.outcomes, want)
				}
				name := LockPrefix + "prod/web/" + ChangeOf(newVersions).ID + "/1"
				if v, ok := tr.ssm.get(name); !ok || v.State != stateDone || v.Result != string(Deployed) || v.Deployment != "ecs-svc/1" {
					t.Errorf("lock %s = %+v (exists %v), want done by a deployment ecs-svc/1", name, v, ok)
				}
				// Nobody waits longer than a loser must.
				if bound := noticeWindow + takeoverAfter + takeoverAfter/4 + time.Second; settled > bound {
					t.Errorf("the last task returned %s after the rotation, want ≤ %s", settled, bound)
				}
				s.add(tr, settled)
			})
		})
	}
	s.log(t, fmt.Sprintf("%d tasks, per rotation", fleetSize))
}

// TestFleetPollWindow: the same fleet noticing the rotation over a whole
// default poll interval (5m ± 10%) with the default takeover delay: still
// one UpdateService, and far fewer reads, since most tasks find the lock
// already done.
func TestFleetPollWindow(t *testing.T) {
	tasks := fleet(t, fleetSize)
	var s stats
	for i := range 5 {
		t.Run(fmt.Sprintf("trial%02d", i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTrial(t)
				tr.ssm.noDelete = true
				tr.window = 5*time.Minute + 30*time.Second
				tr.run(tasks, uint64(i), lockedWith(DefaultTakeoverAfter))
				if n := tr.ecs.calls.n("UpdateService"); n != 1 || len(tr.errs) > 0 {
					t.Errorf("UpdateService called %d times, %d tasks failed; want 1 and none", n, len(tr.errs))
				}
				s.add(tr, time.Since(tr.start))
			})
		})
	}
	s.log(t, fmt.Sprintf("%d tasks over 5m30s, per rotation", fleetSize))
}

// TestFleetNaiveRaces is the control: the same fleet and control plane with
// check-then-act and no lock starts many deployments, so the slowness is
// enough to expose the race and TestFleetExactlyOnce passes by the lock.
func TestFleetNaiveRaces(t *testing.T) {
	tasks := fleet(t, fleetSize)
	for i := range 3 {
		t.Run(fmt.Sprintf("trial%02d", i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTrial(t)
				tr.run(tasks, uint64(i), naive)
				n := tr.ecs.calls.n("UpdateService")
				if n <= 1 {
					t.Errorf("naive check-then-act: %d UpdateService calls, want > 1 (the race is not exposed)", n)
				}
				t.Logf("naive check-then-act: %d tasks started %d deployments", fleetSize, n)
			})
		})
	}
}

// TestFleetTakeover: the elected task fails in different ways; exactly one
// deployment still happens, within TakeoverAfter + jitter of the election.
func TestFleetTakeover(t *testing.T) {
	tasks := fleet(t, fleetSize)
	type setup func(t *testing.T, tr *trial)
	// Jitter is at most TakeoverAfter/4; then a read of each generation, a
	// create, a read after losing it, and a describe.
	const takeoverBound = takeoverAfter + takeoverAfter/4 + 4*ssmLatency + describeLatency
	firstLock := LockPrefix + "prod/web/" + ChangeOf(newVersions).ID + "/1"
	killOnLock := func(t *testing.T, tr *trial) {
		create := tr.ssm.onCreate
		tr.ssm.onCreate = func(name, value string) {
			create(name, value)
			if name == firstLock { // the winner dies right after winning
				tr.cancel[ownerOf(t, value)]()
			}
		}
	}
	for _, tc := range []struct {
		name         string
		setup        setup
		wantOutcomes map[Outcome]int
		wantErrs     int
		wantUpdates  int // calls, failed ones included
		wantDelay    [2]time.Duration
	}{{
		name:         "killed after winning",
		setup:        killOnLock,
		wantOutcomes: map[Outcome]int{TookOver: 1, LostElection: fleetSize - 2},
		wantErrs:     1, wantUpdates: 1,
		wantDelay: [2]time.Duration{takeoverAfter, takeoverBound},
	}, {
		name: "killed after UpdateService, before marking done",
		setup: func(t *testing.T, tr *trial) {
			var once sync.Once
			tr.ecs.onUpdate = func() {
				once.Do(func() {
					v, _ := tr.ssm.get(firstLock)
					tr.cancel[v.Owner]()
				})
			}
		},
		// The holder's UpdateService answered; it returns success even
		// though it could not mark the lock. The taker finds its deployment.
		wantOutcomes: map[Outcome]int{Deployed: 1, AlreadyDeployed: 1, LostElection: fleetSize - 2},
		wantUpdates:  1,
		wantDelay:    [2]time.Duration{0, describeLatency + 2*ssmLatency},
	}, {
		name:         "UpdateService fails",
		setup:        func(t *testing.T, tr *trial) { tr.ecs.failUpdates = 1 },
		wantOutcomes: map[Outcome]int{TookOver: 1, LostElection: fleetSize - 2},
		wantErrs:     1, wantUpdates: 2,
		wantDelay: [2]time.Duration{takeoverAfter, takeoverBound},
	}, {
		name:         "holder too slow to act within its budget",
		setup:        func(t *testing.T, tr *trial) { tr.ecs.slowFirstDescribe = takeoverAfter },
		wantOutcomes: map[Outcome]int{TookOver: 1, LostElection: fleetSize - 2},
		wantErrs:     1, wantUpdates: 1,
		wantDelay: [2]time.Duration{takeoverAfter, takeoverBound},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTrial(t)
				tr.ssm.noDelete = true
				tc.setup(t, tr)
				tr.run(tasks, 7, locked)

				if d := tr.ecs.deployed(); len(d) != 1 {
					t.Fatalf("%d deployments, want 1", len(d))
				}
				if n := tr.ecs.calls.n("UpdateService"); n != tc.wantUpdates {
					t.Errorf("UpdateService called %d times, want %d", n, tc.wantUpdates)
				}
				if len(tr.errs) != tc.wantErrs {
					t.Errorf("%d tasks failed (%v), want %d", len(tr.errs), tr.errs, tc.wantErrs)
				}
				if !sameCounts(tr.outcomes, tc.wantOutcomes) {
					t.Errorf("outcomes %v, want %v", tr.outcomes, tc.wantOutcomes)
				}
				elected := tr.lockAt[firstLock]
				took := tr.ecs.deployed()[0].CreatedAt.Add(-updateLatency) // when the deploying call was made
				delay := took.Sub(elected)
				if delay < tc.wantDelay[0] || delay > tc.wantDelay[1] {
					t.Errorf("the deploying UpdateService was called %s after the election, want in [%s, %s]", delay, tc.wantDelay[0], tc.wantDelay[1])
				}
				t.Logf("election → deploying UpdateService call: %s (fake time); last task returned %s after the rotation",
					delay.Round(time.Millisecond), time.Since(tr.start).Round(time.Millisecond))
			})
		})
	}
}

func ownerOf(t *testing.T, value string) string {
	var v lockValue
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		t.Fatal(err)
	}
	return v.Owner
}

func sameCounts(got, want map[Outcome]int) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if want[k] != v {
			return false
		}
	}
	return true
}
