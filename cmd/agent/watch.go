package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
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
	fs.StringVar(&c.ConfigPath, "config", "", "JSON config `FILE` (or AGENT_CONFIG): services, interval, dryRun, metricsAddr")
	fs.StringVar(&c.Interval, "interval", "", "polling interval (default 5m)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "`HOST:PORT` for /metrics, /healthz and /readyz (default "+DefaultMetricsAddr+")")
	dryRun := fs.Bool("dry-run", false, "log what would be redeployed; call nothing that writes")
	eventsQueue := fs.String("events-queue", "", "SQS queue `URL` of Parameter Store and Secrets Manager change events, for the feed to poll at once (docs/FEED.md)")
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
	wc, err := config.LoadWatch(c.ConfigPath, getenv)
	if err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	// Flags add services and override the file.
	if len(services) > 0 && *cluster == "" {
		return usageErr(stderr, "watch: --service needs --cluster")
	}
	for _, svc := range services {
		wc.Services = append(wc.Services, config.WatchService{Cluster: *cluster, Service: svc, Region: *region})
	}
	if len(wc.Services) == 0 {
		return usageErr(stderr, "watch: no services: give --cluster and --service, or services in --config/AGENT_CONFIG")
	}
	if c.Interval != "" {
		wc.Interval = c.Interval
	}
	if *eventsQueue != "" {
		wc.EventsQueue = *eventsQueue
	}
	if wc.EventsQueue != "" && wc.FeedAddr == "" {
		return usageErr(stderr, "watch: --events-queue needs --feed-addr (or feedAddr): change events only make the feed poll sooner")
	}
	if *dryRun {
		wc.DryRun = true
	}
	if c.MetricsAddr != "" {
		wc.MetricsAddr = c.MetricsAddr
	}
	if wc.MetricsAddr == "" {
		wc.MetricsAddr = DefaultMetricsAddr
	}
	if c.Interval != "" {
		if d, err := time.ParseDuration(c.Interval); err != nil || d < config.MinInterval {
			return usageErr(stderr, "watch: --interval %q is not a duration of 1s or more", c.Interval)
		}
	}
	interval := wc.IntervalOr(5 * time.Minute)
	jitter := interval / 10
	home := *region
	if home == "" {
		// The task's own region: AWS_REGION, else the task metadata.
		if home, err = taskRegionOf(ctx, getenv); err != nil {
			return usageErr(stderr, "watch: --region not given and %v", err)
		}
	}
	var targets []watch.Target
	for _, svc := range wc.Services {
		r := svc.Region
		if r == "" {
			r = home
		}
		targets = append(targets, watch.Target{Cluster: svc.Cluster, Service: svc.Service, Region: r})
	}

	st, m, stop, err := serveEndpoints(wc.MetricsAddr, 3*interval, log)
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
		SSM:     watch.NewSSMClients(cfg),
		Source:  &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: *region, Attempts: fetch.RefreshMaxAttempts},
		Owner:   watcherID(ctx, getenv),
		Targets: targets, Interval: interval, Jitter: jitter, DryRun: wc.DryRun, // the flag or the file
		Log: log, Metrics: m, Status: st, Rand: rand.Float64, Now: time.Now,
	})
	if err := w.Validate(); err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	debug.SetGCPercent(longRunningGCPercent)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // the watcher and the event consumer stop together
	// Until the feed server is merged in; then feedSrv.Notify.
	notify := func(region, id string) {}
	if err := startEvents(ctx, &wg, wc.EventsQueue, cfg, getenv, notify, m, log); err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	log.Info("watching", "services", len(targets), "region", home, "interval", interval.String(), "dry_run", wc.DryRun)
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

// watcherID names this watcher in lock records: its task ARN, else the
// host name. It is for people reading the records; nothing depends on it.
func watcherID(ctx context.Context, getenv func(string) string) string {
	if getenv(taskmeta.EnvURI) != "" {
		if t, err := taskmeta.Get(ctx, getenv, &http.Client{Timeout: 5 * time.Second}); err == nil && t.TaskARN != "" {
			return t.TaskARN
		}
	}
	if h, err := os.Hostname(); err == nil {
		return "agent-watch@" + h
	}
	return "agent-watch"
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return &exitError{code: exitUsage, msg: fmt.Sprint(err)}
}
