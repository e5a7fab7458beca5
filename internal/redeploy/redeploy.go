// Package redeploy forces a new deployment of an ECS service exactly once
// per change, however many actors notice the change: the service's own tasks
// (the in-task redeploy action) and any number of rotation watchers.
//
// UpdateService has no idempotency token, so N actors that each call it
// start N deployments. They agree through one lock per service, shared by
// all of them, and through dates that AWS gives, never an actor's own.
//
// A change is dated by AWS: the modification time of the version it moved
// to (Parameter Store LastModifiedDate; Secrets Manager: DescribeSecret's
// LastChangedDate for the watcher, the version's CreatedDate in a task).
// A deployment whose createdAt is after that date starts tasks that read
// the new value, so it covers the change. Ensure(at) makes sure the service
// has such a deployment:
//
//  1. List the service's lock records (one GetParametersByPath of
//     LockPath(cluster, service)): generations <path>/1, /2, …. The newest
//     record carries the newest deployment its writer knew. If that
//     deployment postdates the change: nothing to do.
//  2. If the newest record is held and younger than TakeoverAfter, wait
//     (short polls, up to MaxWait; then ErrBusy, and the caller retries).
//  3. Otherwise (no record, done, free, or a holder older than
//     TakeoverAfter, which has given up by then: see 5) create generation
//     newest+1 with PutParameter Overwrite=false. SSM creates a name at
//     most once, so one actor wins it; a takeover is an atomic create too.
//  4. The winner lists again: a generation above its own means it lost to a
//     newer round (its view was stale), so it deletes its own and starts
//     over. Else it holds the lock.
//  5. The holder asks DescribeServices for the newest deployment: if it
//     postdates the change, it records it; else it calls UpdateService once
//     (no SDK retry) and records the new deployment. Both calls must finish
//     within TakeoverAfter/2 of taking the lock, or it gives up; a holder
//     that failed before UpdateService could have acted marks its record
//     free, so the next actor need not wait for the takeover delay.
//  6. The holder writes its record "done" with the deployment, and deletes
//     every older generation.
//
// Why at most one holder acts at a time: generations are only created one
// above the newest listed, and a record is deleted only by an actor that
// saw a newer one, so the newest generation never goes away and its number
// never decreases. An actor holds generation g only if g was the newest
// when it verified (step 4); the next generation is created only by an
// actor that listed g as newest and found it done, free, or older than
// TakeoverAfter, by which time g's holder has stopped (step 5; clocks
// within TakeoverAfter/2 of AWS's). Why at most one deployment per change:
// holders run one after another, each checks under the lock whether a
// deployment already covers the change, and the record it leaves tells the
// next actor the same without a DescribeServices.
//
// Lock records are bounded by the services, not by rotations: at rest one
// per service remains (the newest, state done, naming the last deployment);
// a round in progress adds one, and a crashed holder's record is deleted
// by the next holder that finishes.
package redeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// SSMClient is what the lock needs of *ssm.Client.
type SSMClient interface {
	GetParametersByPath(ctx context.Context, params *ssm.GetParametersByPathInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
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
	// must be before another actor takes over.
	DefaultTakeoverAfter = time.Minute
	// DefaultMaxWait is how long Ensure waits on another holder before it
	// returns ErrBusy: the caller (the refresh loop, the watcher's next
	// cycle) retries, and Ensure never blocks it long.
	DefaultMaxWait = 10 * time.Second
	// DefaultPollEvery is the mean wait between reads of a held lock.
	DefaultPollEvery = time.Second

	minTakeoverAfter = 2 * time.Second
	releaseTimeout   = 2 * time.Second // for marking a record free
	maxRounds        = 20              // lost creates in one Ensure before ErrBusy
)

// ErrBusy means another actor holds the service's lock and did not finish
// within MaxWait. Nothing was deployed by this call; call Ensure again.
var ErrBusy = errors.New("another actor holds the redeploy lock")

// Outcome is what one Ensure did.
type Outcome string

const (
	// Deployed: this actor held the lock and called UpdateService.
	Deployed Outcome = "deployed"
	// TookOver: as Deployed, after a holder that did not finish.
	TookOver Outcome = "took-over"
	// AlreadyDeployed: this actor held the lock and found, with
	// DescribeServices, a deployment newer than the change.
	AlreadyDeployed Outcome = "already-deployed"
	// Covered: the lock record named a deployment newer than the change
	// (another actor's); no ECS call.
	Covered Outcome = "covered"
	// WouldDeploy: dry run; nothing written.
	WouldDeploy Outcome = "would-deploy"
)

// Options configure a Redeployer.
type Options struct {
	SSM SSMClient
	ECS ECSClient
	// Cluster and Service (names or ARNs) name the service to redeploy.
	Cluster, Service string
	// Owner names this actor in the lock (a task ARN).
	Owner string
	// TakeoverAfter: default DefaultTakeoverAfter, at least 2s. The holder
	// has half of it to act.
	TakeoverAfter time.Duration
	// MaxWait: default DefaultMaxWait. PollEvery: default DefaultPollEvery.
	MaxWait, PollEvery time.Duration
	// DryRun reads (lock records, DescribeServices) and logs, and never
	// calls PutParameter, DeleteParameter or UpdateService.
	DryRun bool
	// BeforeUpdate, if set, runs right before UpdateService (a client-side
	// rate limit: the watcher paces UpdateService per region); an error
	// gives up before the call.
	BeforeUpdate func(context.Context) error
	Rand         func() float64   // in [0, 1); default math/rand/v2
	Now          func() time.Time // default time.Now
	Log          *slog.Logger     // default: discard
}

// Redeployer forces new deployments of one service. It is safe for
// concurrent use.
type Redeployer struct {
	ssm               SSMClient
	ecs               ECSClient
	cluster, service  string
	owner             string
	path              string
	takeover, maxWait time.Duration
	pollEvery         time.Duration
	dryRun            bool
	beforeUpdate      func(context.Context) error
	rand              func() float64
	now               func() time.Time
	log               *slog.Logger
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
	case o.Owner == "":
		return nil, errors.New("redeploy: owner (task ARN) is empty")
	case o.TakeoverAfter != 0 && o.TakeoverAfter < minTakeoverAfter:
		return nil, fmt.Errorf("redeploy: takeover delay %s is below the minimum %s", o.TakeoverAfter, minTakeoverAfter)
	case o.MaxWait < 0 || o.PollEvery < 0:
		return nil, fmt.Errorf("redeploy: negative wait (max wait %s, poll every %s)", o.MaxWait, o.PollEvery)
	}
	r := &Redeployer{
		ssm: o.SSM, ecs: o.ECS, cluster: o.Cluster, service: o.Service, owner: o.Owner,
		path:     LockPath(o.Cluster, o.Service),
		takeover: cmpOr(o.TakeoverAfter, DefaultTakeoverAfter), maxWait: cmpOr(o.MaxWait, DefaultMaxWait),
		pollEvery: cmpOr(o.PollEvery, DefaultPollEvery), dryRun: o.DryRun, beforeUpdate: o.BeforeUpdate,
		rand: o.Rand, now: o.Now, log: o.Log,
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
	r.log = r.log.With("cluster", shortName(r.cluster), "service", shortName(r.service))
	return r, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Ensure makes sure the service has a deployment created after at (AWS's
// date of the change), started by this actor or another. It returns nil
// when such a deployment is known to exist (or, in a dry run, would have
// been started); ErrBusy (wrapped) when another actor holds the lock past
// MaxWait; any other error when this actor failed. Any error means: call
// again later. Calling again for a change already covered costs one
// GetParametersByPath.
func (r *Redeployer) Ensure(ctx context.Context, at time.Time) (Outcome, error) {
	if at.IsZero() {
		return "", errors.New("redeploy: the change has no date")
	}
	log := r.log.With("change_at", at.UTC().Format(time.RFC3339Nano))
	deadline := r.now().Add(r.maxWait)
	for round := 0; round < maxRounds; round++ {
		locks, err := r.list(ctx)
		if err != nil {
			return "", err
		}
		var top *lock
		if len(locks) > 0 {
			top = &locks[len(locks)-1]
		}
		if top != nil && top.val.DeploymentCreated.After(at) {
			log.Debug("another actor's deployment covers the change", "deployment_id", top.val.Deployment,
				"deployment_created", top.val.DeploymentCreated.UTC().Format(time.RFC3339Nano))
			return Covered, nil
		}
		if top != nil && top.val.State == stateHeld {
			if age := r.now().Sub(top.modified); age < r.takeover {
				left := deadline.Sub(r.now())
				if left <= 0 {
					return "", fmt.Errorf("redeploy: service %s: lock %s held by %s for %s: %w", r.service, top.name, top.val.Owner, age.Round(time.Millisecond), ErrBusy)
				}
				d := min(time.Duration((0.5+r.rand())*float64(r.pollEvery)), left, r.takeover-age)
				if err := sleep(ctx, d); err != nil {
					return "", fmt.Errorf("redeploy: service %s: waiting on lock %s held by %s: %w", r.service, top.name, top.val.Owner, err)
				}
				continue
			}
		}
		tookOver := top != nil && top.val.State == stateHeld
		if r.dryRun {
			return r.dry(ctx, log, at)
		}
		gen := 1
		carry := lockValue{}
		if top != nil {
			gen, carry = top.gen+1, top.val
		}
		start := r.now()
		v := lockValue{Owner: r.owner, Acquired: start.UTC(), State: stateHeld, Deployment: carry.Deployment, DeploymentCreated: carry.DeploymentCreated}
		won, err := r.create(ctx, gen, v)
		if err != nil {
			return "", err
		}
		if !won {
			continue // the winner's record is read in the next round
		}
		glog := log.With("lock", r.genName(gen))
		if tookOver {
			glog.Warn("lock holder did not finish; took over", "holder", top.val.Owner, "lock_age", r.now().Sub(top.modified).Round(time.Millisecond).String())
		}
		locks, err = r.list(ctx)
		if err != nil {
			r.giveUp(ctx, glog, gen, v)
			return "", err
		}
		if len(locks) > 0 && locks[len(locks)-1].gen > gen {
			// A newer round started while this actor's view was stale.
			if err := r.delete(ctx, r.genName(gen)); err != nil {
				glog.Warn("cannot delete a lock record that lost to a newer one", "error", err.Error())
			}
			continue
		}
		return r.act(ctx, glog, gen, v, start, at, locks, tookOver)
	}
	return "", fmt.Errorf("redeploy: service %s: %d rounds lost to other actors: %w", r.service, maxRounds, ErrBusy)
}

// act is the holder's part: check, deploy, record, clean up. start is when
// it sent the create that won; it must finish within takeover/2 of it.
func (r *Redeployer) act(ctx context.Context, log *slog.Logger, gen int, v lockValue, start, at time.Time, locks []lock, tookOver bool) (Outcome, error) {
	actx, cancel := context.WithTimeout(ctx, r.takeover/2-r.now().Sub(start))
	defer cancel()
	newest, err := r.newestDeployment(actx)
	if err != nil {
		r.giveUp(ctx, log, gen, v)
		return "", err
	}
	outcome := AlreadyDeployed
	if newest.CreatedAt == nil || !newest.CreatedAt.After(at) {
		if r.beforeUpdate != nil {
			if err := r.beforeUpdate(actx); err != nil {
				r.giveUp(ctx, log, gen, v)
				return "", fmt.Errorf("redeploy: service %s: waiting to call UpdateService: %w", r.service, err)
			}
		}
		out, err := r.ecs.UpdateService(actx, &ecs.UpdateServiceInput{
			Cluster: aws.String(r.cluster), Service: aws.String(r.service), ForceNewDeployment: true,
		}, func(o *ecs.Options) { o.RetryMaxAttempts = 1 }) // no idempotency token: a retry could deploy twice
		if err != nil {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient {
				// Rejected (denied, throttled, invalid): nothing started.
				r.giveUp(ctx, log, gen, v)
			} // else it may have reached ECS: the record expires and the next holder's DescribeServices tells.
			return "", fmt.Errorf("redeploy: UpdateService %s in cluster %s: %w", r.service, r.cluster, err)
		}
		newest = ecstypes.Deployment{}
		if out.Service != nil {
			newest = newestOf(out.Service.Deployments)
		}
		if newest.CreatedAt == nil {
			newest.CreatedAt = aws.Time(r.now()) // later than the real one: safe
		}
		outcome = Deployed
		if tookOver {
			outcome = TookOver
		}
		log.Info("forced a new deployment", "deployment_id", aws.ToString(newest.Id), "outcome", string(outcome))
	} else {
		log.Info("service already has a deployment newer than the change; not redeploying", "deployment_id", aws.ToString(newest.Id),
			"deployment_created", newest.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	v.State, v.Deployment, v.DeploymentCreated = stateDone, aws.ToString(newest.Id), newest.CreatedAt.UTC()
	if err := r.write(ctx, gen, v); err != nil {
		// Waiting actors take over after the takeover delay and find the
		// deployment; the outcome stands.
		log.Warn("cannot mark the lock done; other actors will take over and find the deployment", "error", err.Error())
		return outcome, nil
	}
	for _, l := range locks {
		if l.gen < gen {
			if err := r.delete(ctx, l.name); err != nil {
				log.Warn("cannot delete an older lock record", "old_lock", l.name, "error", err.Error())
				break
			}
		}
	}
	return outcome, nil
}

// giveUp marks this actor's record free, when it stopped before
// UpdateService could have acted, so the next actor need not wait.
func (r *Redeployer) giveUp(ctx context.Context, log *slog.Logger, gen int, v lockValue) {
	v.State = stateFree
	// Also after SIGTERM (a release lets the next actor go at once), but
	// bounded: a stop must stay prompt.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := r.write(wctx, gen, v); err != nil {
		log.Warn("cannot release the lock; it expires after the takeover delay", "error", err.Error())
	}
}

// dry reports what Ensure would do, with reads only.
func (r *Redeployer) dry(ctx context.Context, log *slog.Logger, at time.Time) (Outcome, error) {
	newest, err := r.newestDeployment(ctx)
	if err != nil {
		return "", err
	}
	if newest.CreatedAt != nil && newest.CreatedAt.After(at) {
		return AlreadyDeployed, nil
	}
	log.Info("would redeploy (dry run)")
	return WouldDeploy, nil
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
