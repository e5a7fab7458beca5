package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
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
	fs.StringVar(&c.ConfigPath, "config", "", "JSON config `FILE` (or AGENT_CONFIG): services, interval, dryRun, metricsAddr, feedAddr, feedRegions, eventsQueue")
	fs.StringVar(&c.Interval, "interval", "", "polling interval (default 5m; 1m when serving the feed)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "`HOST:PORT` for /metrics, /healthz and /readyz (default "+DefaultMetricsAddr+")")
	dryRun := fs.Bool("dry-run", false, "log what would be redeployed; call nothing that writes")
	feedAddr := fs.String("feed-addr", "", "serve the change feed (docs/FEED.md) on `HOST:PORT`; --service is then optional; AGENT_FEED_TOKEN (and AGENT_FEED_TOKEN_PREVIOUS) in the environment make it require that bearer token")
	feedMaxClients := fs.Int("feed-max-clients", feed.DefaultMaxClients, "requests the change feed holds at once")
	feedMaxRefs := fs.Int("feed-max-refs", feed.DefaultMaxRefs, "distinct references the change feed tracks")
	var feedRegions *string // nil: not given
	fs.Func("feed-regions", "the `REGIONS` (comma-separated) whose references the change feed serves; others are answered with an error (default the watcher's own region)", func(s string) error {
		feedRegions = &s
		return nil
	})
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
	if *feedAddr != "" {
		wc.FeedAddr = *feedAddr
	}
	if feedRegions != nil {
		if wc.FeedRegions, err = config.ParseFeedRegions(*feedRegions); err != nil {
			return usageErr(stderr, "watch: %v", err)
		}
	}
	if len(wc.Services) == 0 && wc.FeedAddr == "" {
		return usageErr(stderr, "watch: no services and no feed: give --cluster and --service, services in --config/AGENT_CONFIG, or --feed-addr")
	}
	if *feedMaxClients < 1 || *feedMaxRefs < 1 {
		return usageErr(stderr, "watch: --feed-max-clients and --feed-max-refs must be 1 or more")
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
	if len(wc.FeedRegions) > 0 && wc.FeedAddr == "" {
		return usageErr(stderr, "watch: --feed-regions needs --feed-addr (or feedAddr): they are the regions the change feed serves")
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
	// A feed's clients need its view well within their own (5m) interval.
	interval := wc.IntervalOr(5 * time.Minute)
	if wc.FeedAddr != "" {
		interval = wc.IntervalOr(feed.DefaultServerInterval)
	}
	jitter := interval / 10
	home := *region
	if home == "" {
		// The task's own region: AWS_REGION, else the task metadata. A
		// feed given its regions does not need it: each request names
		// the region of its bare names.
		if home, err = taskRegionOf(ctx, getenv); err != nil {
			switch {
			case len(wc.Services) > 0:
				return usageErr(stderr, "watch: --region not given and %v", err)
			case wc.FeedAddr != "" && len(wc.FeedRegions) == 0:
				return usageErr(stderr, "watch: the change feed serves the watcher's own region by default, and --region is not given and %v: "+
					"pass --feed-regions (or feedRegions) with the regions it serves, e.g. --feed-regions eu-west-1,us-east-1, or --region", err)
			}
		}
	}
	var tokens []feed.Token
	if wc.FeedAddr != "" {
		if tokens, err = feedTokens(getenv); err != nil {
			return usageErr(stderr, "watch: %v", err)
		}
	}
	if wc.FeedAddr != "" && len(wc.FeedRegions) == 0 {
		// Never every region: each served region costs clients and polls.
		if !fetch.ValidRegion(home) {
			return usageErr(stderr, "watch: the change feed serves the watcher's own region by default, and %q is not an AWS region (\"eu-west-1\"): "+
				"pass --feed-regions (or feedRegions), or a valid --region or AWS_REGION", home)
		}
		wc.FeedRegions = []string{home}
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
	clients := fetch.NewClients(cfg)
	var w *watch.Watcher
	if len(targets) > 0 {
		w = watch.New(watch.Options{
			ECS:     watch.NewECSClients(cfg),
			SSM:     watch.NewSSMClients(cfg),
			Source:  &fetch.Fetcher{Clients: clients, Region: *region, Attempts: fetch.RefreshMaxAttempts},
			Owner:   watcherID(ctx, getenv),
			Targets: targets, Interval: interval, Jitter: jitter, DryRun: wc.DryRun, // the flag or the file
			Log: log, Metrics: m, Status: st, Rand: rand.Float64, Now: time.Now,
		})
		if err := w.Validate(); err != nil {
			log.Error("invalid configuration: " + err.Error())
			return &exitError{code: exitUsage, msg: err.Error()}
		}
	}
	debug.SetGCPercent(longRunningGCPercent)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // the watcher and the feed stop together
	var feedSrv *feed.Server
	if wc.FeedAddr != "" {
		feedSrv = feed.NewServer(feed.ServerOptions{
			// Versions only: the feed never reads a value.
			Source:  &fetch.Fetcher{Clients: clients, Region: home, Attempts: fetch.RefreshMaxAttempts},
			Regions: wc.FeedRegions, Tokens: tokens,
			Interval: interval, Jitter: jitter, MaxClients: *feedMaxClients, MaxRefs: *feedMaxRefs,
			Log: log, Registerer: m.Registerer(), Status: st, Now: time.Now, Rand: rand.Float64,
		})
		if err := serveFeed(ctx, &wg, cancel, wc.FeedAddr, wc.FeedRegions, len(tokens), feedSrv, log); err != nil {
			log.Error(err.Error())
			return &exitError{code: exitFailed, msg: err.Error()}
		}
		if w == nil {
			st.Rendered() // nothing else to do first: healthy once serving
		}
	}
	if feedSrv != nil {
		if err := startEvents(ctx, &wg, wc.EventsQueue, cfg, getenv, feedSrv.Notify, m, log); err != nil {
			log.Error("invalid configuration: " + err.Error())
			return &exitError{code: exitUsage, msg: err.Error()}
		}
	}

	log.Info("watching", "services", len(targets), "region", home, "interval", interval.String(), "dry_run", wc.DryRun, "feed", wc.FeedAddr != "")
	if w != nil {
		if err := w.Run(ctx); err != nil {
			log.Error(err.Error())
			return &exitError{code: exitFailed, msg: err.Error()}
		}
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// Limits of the feed's HTTP server. Its requests are held for up to
// feed.MaxWait, so it is not status.Serve, which allows 16 connections
// and writes within 30 s.
const (
	feedReadHeaderTimeout = 5 * time.Second
	// The body; net/http lifts the deadline once it is read, so it does
	// not cut held requests short.
	feedReadTimeout  = 10 * time.Second
	feedWriteTimeout = feed.MaxWait + 30*time.Second
	// Clients ask again at once after an answer: keep their connection.
	feedIdleTimeout = 2 * time.Minute
)

// serveFeed listens on addr, logs the bound address (port 0 picks one),
// and serves the feed and polls for it until ctx ends; it cancels ctx if
// the listener fails. On the way out, held requests are answered (Run
// returns) and the server is shut down within shutdownBudget.
func serveFeed(ctx context.Context, wg *sync.WaitGroup, cancel func(), addr string, regions []string, tokens int, fs *feed.Server, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serving the change feed on %s: %w", addr, err)
	}
	hs := &http.Server{
		Handler:           fs.Handler(),
		ReadHeaderTimeout: feedReadHeaderTimeout, ReadTimeout: feedReadTimeout,
		WriteTimeout: feedWriteTimeout, IdleTimeout: feedIdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving the change feed", "addr", ln.Addr().String(), "path", feed.Path, "regions", regions, "tokens", tokens)
	if tokens == 0 {
		log.Warn("the change feed is open to anyone who reaches its port: any task there can fill it with references and learn names and version ids; set "+
			feed.TokenEnv+" on the watchers and the agents (docs/FEED.md \"Authentication\")", "addr", ln.Addr().String())
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("change feed server failed: " + err.Error())
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		_ = fs.Run(ctx)
		sctx, scancel := context.WithTimeout(context.Background(), shutdownBudget)
		defer scancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	}()
	return nil
}

// feedTokens are the tokens the feed accepts: AGENT_FEED_TOKEN, and
// AGENT_FEED_TOKEN_PREVIOUS while the agents move to a new one. None when
// neither is set. The errors name the variable, never its value.
func feedTokens(getenv func(string) string) ([]feed.Token, error) {
	cur, err := feed.ParseToken(feed.TokenEnv, getenv(feed.TokenEnv))
	if err != nil {
		return nil, err
	}
	prev, err := feed.ParseToken(feed.TokenPreviousEnv, getenv(feed.TokenPreviousEnv))
	if err != nil {
		return nil, err
	}
	switch {
	case prev.Set() && !cur.Set():
		return nil, fmt.Errorf("%s is set but %s is not: the previous token is accepted only alongside the current one", feed.TokenPreviousEnv, feed.TokenEnv)
	case !cur.Set():
		return nil, nil
	case prev.Set():
		return []feed.Token{cur, prev}, nil
	}
	return []feed.Token{cur}, nil
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
