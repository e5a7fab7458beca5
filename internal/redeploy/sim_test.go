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
type act func(ctx context.Context, task taskmeta.Task, rnd func() float64, ssm SSMClient, ecs ECSClient, at time.Time) (Outcome, error)

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
			o, err := do(ctxs[i], task, rng.Float64, tr.ssm, tr.ecs, tr.start)
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

// locked is the action under test: a Redeployer built from the actor's
// own identity, ensuring a deployment newer than the rotation's AWS date,
// and retrying a failed call with capped backoff as the refresh loop (or
// the watcher's next cycle) does.
var locked = lockedWith(takeoverAfter)

func lockedWith(takeover time.Duration) act {
	return func(ctx context.Context, task taskmeta.Task, rnd func() float64, s SSMClient, e ECSClient, at time.Time) (Outcome, error) {
		r, err := New(Options{SSM: s, ECS: e, Cluster: task.Cluster, Service: task.ServiceName, Owner: task.TaskARN,
			TakeoverAfter: takeover, Rand: rnd})
		if err != nil {
			return "", err
		}
		backoff := 2 * time.Second
		for {
			o, err := r.Ensure(ctx, at)
			if err == nil || ctx.Err() != nil {
				return o, err
			}
			if err := sleep(ctx, time.Duration((0.5+rnd())*float64(backoff))); err != nil {
				return "", err
			}
			backoff = min(2*backoff, 8*time.Second)
		}
	}
}

// watchers are rotation watchers in the mix: other actors on the same
// service, naming the cluster by name where the tasks use its ARN.
func watchers(n int) []taskmeta.Task {
	var w []taskmeta.Task
	for i := range n {
		w = append(w, taskmeta.Task{Cluster: "prod", ServiceName: "web", TaskARN: fmt.Sprintf("watcher-%d", i+1)})
	}
	return w
}

// naive is check-then-act without the lock: skip if a deployment newer
// than the change exists, else deploy.
func naive(ctx context.Context, task taskmeta.Task, _ func() float64, _ SSMClient, e ECSClient, at time.Time) (Outcome, error) {
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
	for _, op := range []string{"GetParametersByPath", "GetParameter", "PutParameter", "DeleteParameter"} {
		s.ops[op] = append(s.ops[op], tr.ssm.calls.n(op))
	}
	for _, op := range []string{"DescribeServices", "UpdateService"} {
		s.ops[op] = append(s.ops[op], tr.ecs.calls.n(op))
	}
	s.ops["peak GetParametersByPath/s"] = append(s.ops["peak GetParametersByPath/s"], tr.ssm.calls.peak("GetParametersByPath", time.Second))
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
	for _, op := range []string{"PutParameter", "GetParametersByPath", "GetParameter", "DeleteParameter", "DescribeServices", "UpdateService", "peak GetParametersByPath/s", "peak PutParameter/s"} {
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

// TestFleetExactlyOnce: one rotation, noticed within 2s by every actor
// while UpdateService takes 1.2s, gives exactly one UpdateService in each
// of 20 trials, for every combination of actors on the service: 200
// in-task agents alone, a watcher alone, both, two watchers, and all.
func TestFleetExactlyOnce(t *testing.T) {
	tasks := fleet(t, fleetSize)
	for _, mix := range []struct {
		name   string
		actors []taskmeta.Task
	}{
		{"in-task alone", tasks},
		{"watcher alone", watchers(1)},
		{"in-task and a watcher", append(slices.Clone(tasks), watchers(1)...)},
		{"two watchers", watchers(2)},
		{"in-task and two watchers", append(slices.Clone(tasks), watchers(2)...)},
	} {
		t.Run(mix.name, func(t *testing.T) {
			var s stats
			for i := range trials {
				t.Run(fmt.Sprintf("trial%02d", i), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						tr := newTrial(t)
						tr.run(mix.actors, uint64(i), locked)
						settled := time.Since(tr.start)

						if n := tr.ecs.calls.n("UpdateService"); n != 1 {
							t.Errorf("UpdateService called %d times, want 1", n)
						}
						if len(tr.errs) > 0 {
							t.Errorf("%d actors failed, first: %v", len(tr.errs), tr.errs[0])
						}
						want := map[Outcome]int{Deployed: 1, Covered: len(mix.actors) - 1}
						if !sameCounts(tr.outcomes, want) {
							t.Errorf("outcomes %v, want %v", tr.outcomes, want)
						}
						if names := tr.ssm.names(); len(names) != 1 || names[0] != LockPrefix+"prod/web/1" {
							t.Errorf("lock records %q, want generation 1 only", names)
						}
						if v, _ := tr.ssm.get(LockPrefix + "prod/web/1"); v.State != stateDone || v.Deployment != "ecs-svc/1" {
							t.Errorf("lock record %+v, want done naming ecs-svc/1", v)
						}
						// Nobody waits longer than the holder takes, plus a poll.
						if bound := noticeWindow + describeLatency + updateLatency + 10*ssmLatency + 2*DefaultPollEvery; settled > bound {
							t.Errorf("the last actor returned %s after the rotation, want ≤ %s", settled, bound)
						}
						s.add(tr, settled)
					})
				})
			}
			s.log(t, fmt.Sprintf("%d actors, per rotation", len(mix.actors)))
		})
	}
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
// deployment still happens: after the takeover delay when the holder may
// have acted, at once when it released the lock.
func TestFleetTakeover(t *testing.T) {
	tasks := fleet(t, fleetSize)
	type setup func(t *testing.T, tr *trial)
	// Then the actors' retry backoff (≤ 12s), a list, a create, a list and
	// a describe.
	const retryBound = 12*time.Second + 4*ssmLatency + describeLatency
	firstLock := LockPrefix + "prod/web/1"
	killOnLock := func(crash bool) setup {
		return func(t *testing.T, tr *trial) {
			var dead sync.Map // owner → crashed
			tr.ssm.crashed = func(value string) bool { _, ok := dead.Load(ownerOf(t, value)); return ok }
			create := tr.ssm.onCreate
			tr.ssm.onCreate = func(name, value string) {
				create(name, value)
				if name == firstLock { // the winner stops right after winning
					if crash {
						dead.Store(ownerOf(t, value), true)
					}
					tr.cancel[ownerOf(t, value)]()
				}
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
		name:         "crashed after winning",
		setup:        killOnLock(true),
		wantOutcomes: map[Outcome]int{TookOver: 1, Covered: fleetSize - 2},
		wantErrs:     1, wantUpdates: 1,
		wantDelay: [2]time.Duration{takeoverAfter, takeoverAfter + retryBound},
	}, {
		name:         "stopped (SIGTERM) after winning releases the lock",
		setup:        killOnLock(false),
		wantOutcomes: map[Outcome]int{Deployed: 1, Covered: fleetSize - 2},
		wantErrs:     1, wantUpdates: 1,
		wantDelay: [2]time.Duration{0, retryBound + DefaultMaxWait},
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
		wantOutcomes: map[Outcome]int{Deployed: 1, AlreadyDeployed: 1, Covered: fleetSize - 2},
		wantUpdates:  1,
		wantDelay:    [2]time.Duration{0, describeLatency + 3*ssmLatency},
	}, {
		name:         "UpdateService fails in a way that may have reached ECS",
		setup:        func(t *testing.T, tr *trial) { tr.ecs.failUpdates = 1 },
		wantOutcomes: map[Outcome]int{TookOver: 1, Covered: fleetSize - 1},
		wantUpdates:  2,
		wantDelay:    [2]time.Duration{takeoverAfter, takeoverAfter + retryBound},
	}, {
		name:         "holder too slow to check within its budget releases the lock",
		setup:        func(t *testing.T, tr *trial) { tr.ecs.slowFirstDescribe = takeoverAfter },
		wantOutcomes: map[Outcome]int{Deployed: 1, Covered: fleetSize - 1},
		wantUpdates:  1,
		wantDelay:    [2]time.Duration{takeoverAfter / 2, takeoverAfter/2 + retryBound},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newTrial(t)
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
				if names := tr.ssm.names(); len(names) > 2 {
					t.Errorf("lock records %q, want at most 2", names)
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
