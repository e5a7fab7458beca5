// Package redeploy forces a new deployment of the ECS service a task belongs
// to, once per change of its secrets, however many of the service's tasks
// notice that change.
//
// UpdateService has no idempotency token, so N tasks that each call it start
// N deployments. The tasks therefore elect one actor per change:
//
//  1. A change is the set of current secret versions (ChangeOf), hashed into
//     an id. Its lock is the SSM parameter
//     LockPrefix/<cluster>/<service>/<change id>/<generation>, generation 1
//     first.
//  2. A task reads the lock (GetParameter). If there is none, it creates it
//     with PutParameter Overwrite=false: SSM creates a name at most once, so
//     exactly one task wins; the others get ParameterAlreadyExists.
//  3. The winner checks DescribeServices: if the service's newest deployment
//     was created after the change, someone already deployed and it stops.
//     Otherwise it calls UpdateService with forceNewDeployment. Both calls
//     must finish within TakeoverAfter/2 of taking the lock, or it gives up
//     without acting. Then it overwrites its lock with state "done".
//  4. A task that finds the lock held waits until the lock is TakeoverAfter
//     old (plus jitter) and reads it again. Done: it returns. Still held: the
//     holder died or gave up, so the task moves on to generation 2 and repeats
//     from step 2 there, so a takeover is an atomic create too. A taker
//     dates the change no later than the creation of generation 1, so a
//     deployment the dead holder did start is found in step 3.
//
// Done locks stay in place so tasks that notice the change late return
// after one GetParameter; the winner of the next change deletes them once
// they are older than the retention.
package redeploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSMClient is what the lock needs of *ssm.Client.
type SSMClient interface {
	PutParameter(ctx context.Context, params *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameter(ctx context.Context, params *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	DeleteParameter(ctx context.Context, params *ssm.DeleteParameterInput, optFns ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// ECSClient is what a redeploy needs of *ecs.Client.
type ECSClient interface {
	DescribeServices(ctx context.Context, params *ecs.DescribeServicesInput, optFns ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	UpdateService(ctx context.Context, params *ecs.UpdateServiceInput, optFns ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
}

const (
	// DefaultTakeoverAfter is how old a lock whose holder has not finished
	// must be before another task takes over.
	DefaultTakeoverAfter = time.Minute
	// DefaultRetention is how long a finished lock stays, answering tasks
	// that notice the change late. It must exceed the time the slowest task
	// of the service takes to notice a change.
	DefaultRetention = 24 * time.Hour
	// MaxGenerations bounds the takeovers of one change.
	MaxGenerations = 5

	minTakeoverAfter = 2 * time.Second
)

// Outcome is what one task did about a change.
type Outcome string

const (
	// Deployed: this task won the election and called UpdateService.
	Deployed Outcome = "deployed"
	// TookOver: the elected task did not finish; this task took over and
	// called UpdateService.
	TookOver Outcome = "took-over"
	// AlreadyDeployed: this task held the lock, but the service already had
	// a deployment newer than the change, so it did not call UpdateService.
	AlreadyDeployed Outcome = "already-deployed"
	// LostElection: another task held the lock and finished.
	LostElection Outcome = "lost-election"
)

// Change is one change of a task's secrets.
type Change struct {
	// ID names the change; every task that sees the same change must derive
	// the same id (ChangeOf).
	ID string
	// At dates the change: the creation time of the newest changed version
	// when the caller knows it (AWS clock, the best choice), else when this
	// task observed it. Zero means now.
	At time.Time
	// Previous is the id of the state before the change (ChangeOf of the old
	// versions), or empty. The task that deploys deletes its locks once they
	// are older than the retention.
	Previous string
}

// ChangeOf returns the change whose id is derived from versions: the
// version of every secret the task renders, changed or not, by configured
// name. Passing all of them, not only those that moved, makes the id the same
// for tasks that saw the change in different steps (two secrets rotated
// between one task's polls but across another's).
func ChangeOf(versions map[string]string) Change {
	names := make([]string, 0, len(versions))
	for n := range versions {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		v := versions[n]
		// Length prefixes keep ("a=", "b") and ("a", "=b") apart.
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(n), n, len(v), v)
	}
	return Change{ID: hex.EncodeToString(h.Sum(nil)[:16])}
}

// Options configure a Redeployer.
type Options struct {
	SSM SSMClient
	ECS ECSClient
	// Cluster and Service (names or ARNs) name the service to redeploy;
	// TaskARN names this task in the lock. They come from the task metadata
	// endpoint (taskmeta.Get) unless configured.
	Cluster, Service, TaskARN string
	// TakeoverAfter: default DefaultTakeoverAfter, at least 2s. The holder
	// has half of it to act; waiting tasks add up to a quarter of it as
	// jitter.
	TakeoverAfter time.Duration
	// Retention: default DefaultRetention.
	Retention time.Duration
	Rand      func() float64   // in [0, 1); default math/rand/v2
	Now       func() time.Time // default time.Now
	Log       *slog.Logger     // default: discard
}

// Redeployer forces new deployments of one service. It is safe for
// concurrent use.
type Redeployer struct {
	ssm                SSMClient
	ecs                ECSClient
	cluster, service   string
	task               string
	lockDir            string
	takeover, retained time.Duration
	rand               func() float64
	now                func() time.Time
	log                *slog.Logger
}

// New checks o and returns a Redeployer. Errors name the missing or bad option.
func New(o Options) (*Redeployer, error) {
	switch {
	case o.SSM == nil:
		return nil, errors.New("redeploy: no SSM client")
	case o.ECS == nil:
		return nil, errors.New("redeploy: no ECS client")
	case o.Cluster == "":
		return nil, errors.New("redeploy: cluster is empty (not in the task metadata and not configured)")
	case o.Service == "":
		return nil, errors.New("redeploy: service is empty: the task is not part of an ECS service (the task metadata has no ServiceName) and none is configured")
	case o.TaskARN == "":
		return nil, errors.New("redeploy: task ARN is empty")
	case o.TakeoverAfter != 0 && o.TakeoverAfter < minTakeoverAfter:
		return nil, fmt.Errorf("redeploy: takeover delay %s is below the minimum %s", o.TakeoverAfter, minTakeoverAfter)
	case o.Retention < 0:
		return nil, fmt.Errorf("redeploy: retention %s is negative", o.Retention)
	}
	r := &Redeployer{
		ssm: o.SSM, ecs: o.ECS, cluster: o.Cluster, service: o.Service, task: o.TaskARN,
		lockDir:  lockDir(o.Cluster, o.Service),
		takeover: o.TakeoverAfter, retained: o.Retention,
		rand: o.Rand, now: o.Now, log: o.Log,
	}
	if r.takeover == 0 {
		r.takeover = DefaultTakeoverAfter
	}
	if r.retained == 0 {
		r.retained = DefaultRetention
	}
	if r.rand == nil {
		r.rand = rand.Float64
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Redeploy makes sure the service gets exactly one new deployment for
// change, started by this task or another. It returns when a deployment for
// the change is known to exist (or to have been found unnecessary), which
// for a task that lost the election is up to 1.25×TakeoverAfter after the
// winner took the lock. With an error, this task did not finish: another
// task takes over after TakeoverAfter.
func (r *Redeployer) Redeploy(ctx context.Context, change Change) (Outcome, error) {
	if change.ID == "" {
		return "", errors.New("redeploy: the change has no id")
	}
	if change.At.IsZero() {
		change.At = r.now()
	}
	log := r.log.With("change_id", change.ID)
	since := change.At // a deployment created after this carries the change
	gen, vanished := 1, 0
	for gen <= MaxGenerations {
		name := r.lockName(change.ID, gen)
		l, found, err := r.read(ctx, name)
		if err != nil {
			return "", err
		}
		if !found {
			start := r.now()
			won, held, err := r.create(ctx, name, start)
			if err != nil {
				return "", err
			}
			if won {
				return r.act(ctx, log.With("lock", name, "generation", gen), change, gen, start, since)
			}
			if held == nil { // created and deleted in between: read again
				if vanished++; vanished > 3 {
					return "", fmt.Errorf("redeploy: lock %s keeps vanishing", name)
				}
				continue
			}
			l = *held
		}
		if gen == 1 && l.modified.Before(since) {
			since = l.modified
		}
		switch age := r.now().Sub(l.modified); {
		case l.val.State == stateDone:
			log.Debug("another task redeployed", "lock", name, "holder", l.val.Owner, "deployment_id", l.val.Deployment)
			return LostElection, nil
		case age >= r.takeover:
			log.Warn("lock holder did not finish; trying the next generation", "lock", name, "holder", l.val.Owner, "lock_age", age.Round(time.Millisecond).String())
			gen++
		default:
			jitter := time.Duration(r.rand() * float64(r.takeover/4))
			if err := sleep(ctx, r.takeover-age+jitter); err != nil {
				return "", fmt.Errorf("redeploy: waiting on lock %s held by %s: %w", name, l.val.Owner, err)
			}
		}
	}
	return "", fmt.Errorf("redeploy: service %s: %d lock holders in turn did not finish change %s; giving up", r.service, MaxGenerations, change.ID)
}

// act is the holder's part: check, deploy, mark done. start is when it sent
// the PutParameter that won; it must finish within takeover/2 of it.
func (r *Redeployer) act(ctx context.Context, log *slog.Logger, change Change, gen int, start, since time.Time) (Outcome, error) {
	actx, cancel := context.WithTimeout(ctx, r.takeover/2-r.now().Sub(start))
	defer cancel()
	newest, err := r.newestDeployment(actx)
	if err != nil {
		return "", err
	}
	if newest.CreatedAt != nil && newest.CreatedAt.After(since) {
		id := aws.ToString(newest.Id)
		log.Info("service already has a deployment newer than the change; not redeploying", "deployment_id", id,
			"deployment_created", newest.CreatedAt.UTC().Format(time.RFC3339Nano), "change_at", since.UTC().Format(time.RFC3339Nano))
		r.markDone(ctx, log, change.ID, gen, start, string(AlreadyDeployed), id)
		return AlreadyDeployed, nil
	}
	out, err := r.ecs.UpdateService(actx, &ecs.UpdateServiceInput{
		Cluster: aws.String(r.cluster), Service: aws.String(r.service), ForceNewDeployment: true,
	})
	if err != nil {
		return "", fmt.Errorf("redeploy: UpdateService %s in cluster %s: %w", r.service, r.cluster, err)
	}
	var id string
	if out.Service != nil {
		id = aws.ToString(newestOf(out.Service.Deployments).Id)
	}
	outcome := Deployed
	if gen > 1 {
		outcome = TookOver
	}
	log.Info("forced a new deployment", "deployment_id", id, "outcome", string(outcome))
	r.markDone(ctx, log, change.ID, gen, start, string(outcome), id)
	r.cleanup(ctx, log, change.Previous)
	return outcome, nil
}

// newestDeployment returns the service's newest deployment (its PRIMARY),
// or a zero Deployment if it has none.
func (r *Redeployer) newestDeployment(ctx context.Context) (ecstypes.Deployment, error) {
	out, err := r.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster: aws.String(r.cluster), Services: []string{r.service},
	})
	if err != nil {
		return ecstypes.Deployment{}, fmt.Errorf("redeploy: DescribeServices %s in cluster %s: %w", r.service, r.cluster, err)
	}
	for _, f := range out.Failures {
		return ecstypes.Deployment{}, fmt.Errorf("redeploy: DescribeServices %s in cluster %s: %s %s", r.service, r.cluster, aws.ToString(f.Reason), aws.ToString(f.Detail))
	}
	if len(out.Services) != 1 {
		return ecstypes.Deployment{}, fmt.Errorf("redeploy: DescribeServices %s in cluster %s: %d services in the answer, want 1", r.service, r.cluster, len(out.Services))
	}
	return newestOf(out.Services[0].Deployments), nil
}

func newestOf(ds []ecstypes.Deployment) ecstypes.Deployment {
	var n ecstypes.Deployment
	for _, d := range ds {
		if d.CreatedAt != nil && (n.CreatedAt == nil || d.CreatedAt.After(*n.CreatedAt)) {
			n = d
		}
	}
	return n
}

// cleanup deletes the locks of the previous change once all are older than
// the retention. Failures only leave parameters behind, so they are logged.
func (r *Redeployer) cleanup(ctx context.Context, log *slog.Logger, previous string) {
	if previous == "" {
		return
	}
	var names []string
	for gen := 1; gen <= MaxGenerations; gen++ {
		name := r.lockName(previous, gen)
		l, found, err := r.read(ctx, name)
		if err != nil {
			log.Warn("cannot read the previous change's lock to clean it up", "previous_lock", name, "error", err.Error())
			return
		}
		if !found {
			break
		}
		if r.now().Sub(l.modified) < r.retained {
			return // a late task may still need it
		}
		names = append(names, name)
	}
	for _, name := range names {
		if err := r.delete(ctx, name); err != nil {
			log.Warn("cannot delete the previous change's lock", "previous_lock", name, "error", err.Error())
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *Redeployer) lockName(changeID string, gen int) string {
	return r.lockDir + part(changeID) + "/" + strconv.Itoa(gen)
}
