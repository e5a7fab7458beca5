package main

import (
	"context"
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
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskmeta"
)

// redeployBuilder makes the in-task redeploy action: cluster and service
// from the task metadata endpoint (no API call) unless configured, clients
// in the task's region. values is read when a change is acted on.
func redeployBuilder(ctx context.Context, cfg aws.Config, region string, getenv func(string) string,
	values func() *refresh.Loop, log *slog.Logger) func(config.RedeployAction) (action.Action, error) {
	return func(c config.RedeployAction) (action.Action, error) {
		task, err := taskmeta.Get(ctx, getenv, &http.Client{Timeout: 5 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("needs the task metadata endpoint: %w", err)
		}
		cluster, service := c.Cluster, c.Service
		if cluster == "" {
			cluster = task.Cluster
		}
		if service == "" {
			service = task.ServiceName
		}
		r, err := redeploy.New(redeploy.Options{
			SSM:     ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region }),
			ECS:     updateOnce{ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.Region = region })},
			Cluster: cluster, Service: service, TaskARN: task.TaskARN,
			Log: log.With("component", "redeploy"),
		})
		if err != nil {
			return nil, err
		}
		return &redeployAction{r: r, loop: values, log: log}, nil
	}
}

// redeployAction runs the election in the background: a task that loses
// waits up to the takeover delay, and the refresh loop must not wait with
// it. One election at a time; a change that arrives meanwhile starts the
// next one when it is over.
type redeployAction struct {
	r    *redeploy.Redeployer
	loop func() *refresh.Loop
	log  *slog.Logger

	mu      sync.Mutex
	running bool
	pending *redeploy.Change
	prev    string
}

func (a *redeployAction) Kind() string { return "redeploy" }

func (a *redeployAction) Run(ctx context.Context, c action.Change) error {
	versions := map[string]string{}
	for name, res := range c.Values {
		versions[name] = res.Version
	}
	change := redeploy.ChangeOf(versions)
	a.mu.Lock()
	defer a.mu.Unlock()
	change.Previous, a.prev = a.prev, change.ID
	if a.running {
		a.pending = &change
		return nil
	}
	a.running = true
	go a.elect(context.WithoutCancel(ctx), change)
	return nil
}

func (a *redeployAction) elect(ctx context.Context, change redeploy.Change) {
	for {
		outcome, err := a.r.Redeploy(ctx, change)
		if err != nil {
			a.log.Error("redeploy failed: "+err.Error(), "change", change.ID)
		} else {
			a.log.Info("redeploy", "outcome", string(outcome), "change", change.ID)
		}
		a.mu.Lock()
		next := a.pending
		a.pending = nil
		if next == nil {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		change = *next
	}
}

// updateOnce makes UpdateService a single attempt: it has no idempotency
// token, so a retry whose first attempt did reach ECS would start a second
// deployment. A failed call is left to the election's takeover.
type updateOnce struct{ *ecs.Client }

func (c updateOnce) UpdateService(ctx context.Context, in *ecs.UpdateServiceInput, optFns ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error) {
	return c.Client.UpdateService(ctx, in, append(optFns, func(o *ecs.Options) { o.RetryMaxAttempts = 1 })...)
}
