package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
)

// redeployBuilder makes the in-task redeploy action (internal/redeploy).
// ctx is the process's context, not the start-up deadline's: reloads after
// the deadline build the action too.
func redeployBuilder(ctx context.Context, cfg aws.Config, getenv func(string) string, log *slog.Logger) func(config.RedeployAction) (action.Action, error) {
	return redeploy.NewBuilder(ctx, redeploy.BuilderOptions{AWS: cfg, Getenv: getenv, Log: log})
}
