package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskmeta"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/watch"
)

// runWatch is the rotation watcher: a one-task ECS service of its own that
// redeploys the services whose task-definition secrets rotated.
func runWatch(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	var services []string
	cluster := fs.String("cluster", "", "the `CLUSTER` (name or ARN) of the --service values")
	fs.Var(repeated{&services}, "service", "a `SERVICE` to watch (name or ARN; repeatable)")
	region := fs.String("region", "", "the services' `REGION` (default $AWS_REGION, else the task's)")
	fs.StringVar(&c.Interval, "interval", "", "polling interval (default 5m)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", DefaultMetricsAddr, "`HOST:PORT` for /metrics, /healthz and /readyz")
	dryRun := fs.Bool("dry-run", false, "log what would be redeployed; call nothing that writes")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "watch: unexpected argument %q", fs.Arg(0))
	}
	log, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return usageErr(stderr, "watch: %v", err)
	}
	interval, jitter := 5*time.Minute, 30*time.Second
	if c.Interval != "" {
		if interval, err = time.ParseDuration(c.Interval); err != nil || interval < time.Second {
			return usageErr(stderr, "watch: --interval %q is not a duration of 1s or more", c.Interval)
		}
		jitter = interval / 10
	}
	if *cluster == "" || len(services) == 0 {
		return usageErr(stderr, "watch: give --cluster and at least one --service")
	}
	if *region == "" {
		// The task's own region: AWS_REGION, else the task metadata.
		r, err := taskRegionOf(ctx, getenv)
		if err != nil {
			return usageErr(stderr, "watch: --region not given and %v", err)
		}
		*region = r
	}
	var targets []watch.Target
	for _, svc := range services {
		targets = append(targets, watch.Target{Cluster: *cluster, Service: svc, Region: *region})
	}

	st, m, stop, err := serveEndpoints(c.MetricsAddr, 3*interval, log)
	if err != nil {
		return err
	}
	defer stop()

	cfg, err := fetch.LoadAWSConfig(ctx, m.ObserveAPICall)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	w := watch.New(watch.Options{
		ECS:     watch.NewECSClients(cfg),
		Source:  &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: *region, Attempts: fetch.RefreshMaxAttempts},
		Targets: targets, Interval: interval, Jitter: jitter, DryRun: *dryRun,
		Log: log, Metrics: m, Status: st, Rand: rand.Float64, Now: time.Now,
	})
	if err := w.Validate(); err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	debug.SetGCPercent(longRunningGCPercent)
	log.Info("watching", "cluster", *cluster, "services", services, "region", *region, "interval", interval.String(), "dry_run", *dryRun)
	if err := w.Run(ctx); err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	log.Info("stopping")
	return nil
}

// taskRegionOf is the task's region: AWS_REGION, AWS_DEFAULT_REGION, else
// the task ARN's from the task metadata endpoint.
func taskRegionOf(ctx context.Context, getenv func(string) string) (string, error) {
	for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if r := getenv(v); r != "" {
			return r, nil
		}
	}
	t, err := taskmeta.Get(ctx, getenv, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	return t.Region()
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return &exitError{code: exitUsage, msg: fmt.Sprint(err)}
}
