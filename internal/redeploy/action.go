package redeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskmeta"
)

// metadataTimeout bounds one call to the task metadata endpoint.
const metadataTimeout = 5 * time.Second

// BuilderOptions configure NewBuilder.
type BuilderOptions struct {
	AWS    aws.Config
	Getenv func(string) string
	HTTP   *http.Client // for the task metadata endpoint; default: 5 s timeout
	Log    *slog.Logger // default: discard
	Now    func() time.Time

	// SSM and ECS make the clients for a region; default: from AWS.
	SSM func(region string) SSMClient
	ECS func(region string) ECSClient
	// Redeployer options passed through (0 means the defaults).
	TakeoverAfter, MaxWait time.Duration
}

// NewBuilder returns what action.Options.Redeploy wants: it builds the
// in-task redeploy action, with cluster and service from the task metadata
// endpoint unless configured, and clients in the task's region (AWS_REGION,
// AWS_DEFAULT_REGION, else the task ARN's), whatever region the secrets'
// references name. The metadata is read once and kept; ctx is the
// process's, not a start-up deadline's, so a configuration reload long
// after start builds the action too.
func NewBuilder(ctx context.Context, o BuilderOptions) func(config.RedeployAction) (action.Action, error) {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: metadataTimeout}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SSM == nil {
		o.SSM = func(region string) SSMClient {
			return ssm.NewFromConfig(o.AWS, func(so *ssm.Options) { so.Region = region })
		}
	}
	if o.ECS == nil {
		o.ECS = func(region string) ECSClient {
			return ecs.NewFromConfig(o.AWS, func(eo *ecs.Options) { eo.Region = region })
		}
	}
	started := o.Now()
	var (
		mu     sync.Mutex
		task   *taskmeta.Task
		region string
	)
	identity := func() (taskmeta.Task, string, error) {
		mu.Lock()
		defer mu.Unlock()
		if task != nil {
			return *task, region, nil
		}
		// Not cancelled with ctx's deadline, bounded by its own.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metadataTimeout)
		defer cancel()
		t, err := taskmeta.Get(mctx, o.Getenv, o.HTTP)
		if err != nil {
			err = fmt.Errorf("needs the task metadata endpoint: %w", err)
			if !errors.Is(err, taskmeta.ErrNotInTask) {
				err = &metadataError{err}
			}
			return taskmeta.Task{}, "", err
		}
		r := o.Getenv("AWS_REGION")
		if r == "" {
			r = o.Getenv("AWS_DEFAULT_REGION")
		}
		if r == "" {
			if r, err = t.Region(); err != nil {
				return taskmeta.Task{}, "", fmt.Errorf("no region for the ECS and SSM calls: set AWS_REGION (%w)", err)
			}
		}
		task, region = &t, r
		return t, r, nil
	}
	return func(c config.RedeployAction) (action.Action, error) {
		log := o.Log.With("component", "redeploy")
		build := func() (*Redeployer, error) { return o.redeployer(c, identity, log) }
		r, err := build()
		var transient *metadataError
		if errors.As(err, &transient) {
			// The endpoint failed, not the configuration: ask again when
			// acting (a failed Run is retried), rather than end the agent
			// as if its configuration were wrong.
			log.Warn("the task metadata endpoint failed; the redeploy action asks again when it acts", "error", err.Error())
			return &Action{build: build, started: started, now: o.Now, log: log}, nil
		}
		if err != nil {
			return nil, err
		}
		return &Action{r: r, started: started, now: o.Now, log: log}, nil
	}
}

// metadataError is a task metadata endpoint that did not answer well; not
// running in a task at all is not one.
type metadataError struct{ err error }

func (e *metadataError) Error() string { return e.err.Error() }
func (e *metadataError) Unwrap() error { return e.err }

// redeployer builds the Redeployer of c from the task's identity.
func (o BuilderOptions) redeployer(c config.RedeployAction, identity func() (taskmeta.Task, string, error), log *slog.Logger) (*Redeployer, error) {
	t, region, err := identity()
	if err != nil {
		return nil, err
	}
	cluster, service := c.Cluster, c.Service
	if cluster == "" {
		cluster = t.Cluster
	}
	if service == "" {
		service = t.ServiceName
	}
	return New(Options{
		SSM: o.SSM(region), ECS: o.ECS(region),
		Cluster: cluster, Service: service, Owner: t.TaskARN,
		TakeoverAfter: o.TakeoverAfter, MaxWait: o.MaxWait,
		Now: o.Now, Log: log,
	})
}

// Action is the in-task redeploy action. Run returns when the change is
// known to be covered by a deployment (nil) or not yet (an error: the
// refresh loop retries it), at most about MaxWait plus the holder's budget.
type Action struct {
	r       *Redeployer
	build   func() (*Redeployer, error) // when r is nil: the metadata endpoint failed at build
	started time.Time                   // when this agent started
	now     func() time.Time
	log     *slog.Logger
}

// Kind implements action.Action.
func (a *Action) Kind() string { return "redeploy" }

// Run implements action.Action.
func (a *Action) Run(ctx context.Context, c action.Change) error {
	at := changeDate(c)
	switch {
	case at.IsZero():
		// AWS gave no date: the moment this task noticed is the best left;
		// later than the change, so a deployment may be repeated, never missed.
		at = a.now()
	case at.Before(a.started) && !c.Restored:
		// A version older than this agent came back (a Secrets Manager
		// stage or a Parameter Store label moved to it): its creation
		// dates nothing, and the deployments since may hold the other value.
		// A restored change was noticed by an earlier process: its date
		// stands, so the tasks that did deploy for it are not repeated.
		at = a.now()
	}
	if a.r == nil {
		r, err := a.build()
		if err != nil {
			return err
		}
		a.r = r
	}
	o, err := a.r.Ensure(ctx, at)
	if err != nil {
		return err
	}
	a.log.Info("redeploy done", "outcome", string(o), "changed", c.Changed)
	return nil
}

// changeDate is c.At, else the newest AWS date among the changed values.
func changeDate(c action.Change) time.Time {
	if !c.At.IsZero() {
		return c.At
	}
	var at time.Time
	for _, name := range c.Changed {
		if m := c.Values[name].Modified; m.After(at) {
			at = m
		}
	}
	return at
}
