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
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// DefaultMetricsAddr serves /metrics, /healthz and /readyz when nothing is set.
const DefaultMetricsAddr = ":9102"

// longRunningGCPercent is GOGC for the long-running commands: the heap may
// grow 25% over what is live before a collection, not the default 100%.
const longRunningGCPercent = 25

// shutdownBudget keeps a clean stop well inside ECS's default 30 s stopTimeout.
const shutdownBudget = 5 * time.Second

func runSidecar(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs, c := newFlagSet("run", stderr)
	fs.StringVar(&c.Interval, "interval", "", "refresh interval, e.g. 30s or 5m (default 5m); overrides refresh.interval")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "`HOST:PORT` for /metrics, /healthz and /readyz (default "+DefaultMetricsAddr+"; port 0 picks one)")
	fs.StringVar(&c.Feed, "feed", "", feedUsage)
	s, log, err := c.parse(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	if s.MetricsAddr == "" {
		s.MetricsAddr = DefaultMetricsAddr
	}
	// The configuration's actions as this command allows them, before any
	// AWS call (redeploy's clients are made later).
	if _, err := action.New(s.OnChange, action.Options{Redeploy: checkRedeploy}); err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}

	st, m, stop, err := serveEndpoints(s.MetricsAddr, s.MaxStale, log)
	if err != nil {
		return err
	}
	defer stop()

	startCtx, cancelStart := context.WithTimeout(ctx, c.timeout)
	defer cancelStart()
	region, err := taskRegion(startCtx, s, getenv)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	cfg, err := fetch.LoadAWSConfig(startCtx, m.ObserveAPICall)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	redeployer := redeployBuilder(ctx, cfg, getenv, log)
	newActions := func(a []config.Action) ([]action.Action, error) {
		return action.New(a, action.Options{Redeploy: redeployer, Log: log})
	}
	fetcher := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	fd, stopFeed, err := startFeed(ctx, s, c.feedToken, region, m.Registerer(), log)
	if err != nil {
		return err
	}
	defer stopFeed()
	loop, err := refresh.New(refresh.Options{
		Source:   fetcher,
		Settings: s, Metrics: m, Status: st, Log: log, Rand: rand.Float64, Actions: newActions, Feed: fd,
		KeepPending: true, // the app outlives a restart of this container
	})
	if err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	defer loop.Close()

	if err := loop.Start(startCtx); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before the first render")
			return nil
		}
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	fetcher.Attempts = fetch.RefreshMaxAttempts
	// The first render's concurrent fetch is the agent's high-water mark;
	// hand that memory back now rather than hold it for the task's life, and
	// from now on collect sooner: an idle sidecar has CPU to spare, and its
	// memory counts against the task's.
	debug.FreeOSMemory()
	debug.SetGCPercent(longRunningGCPercent)
	log.Info("secrets rendered; ready", "output_dir", s.OutputDir, "secrets", len(s.Secrets),
		"interval", s.Interval.String())

	reload := func() (*config.Settings, error) {
		ns, err := config.Load(c.Flags, getenv)
		if err == nil && ns.MetricsAddr == "" {
			ns.MetricsAddr = DefaultMetricsAddr
		}
		return ns, err
	}
	events, err := refresh.Watch(ctx, c.ConfigPath, s.OutputDir, reload, log)
	if err != nil {
		log.Warn("cannot watch files; relying on the refresh timer alone", "error", err.Error())
	}
	_ = loop.Run(ctx, events)
	log.Info("stopping")
	return nil
}

// runHealth is `agent health`, the container healthCheck: by default it asks
// /healthz (alive, first render done), which an AWS outage later does not
// fail, so ECS does not replace a task whose files are good (SPEC §6
// "Failing safe"). --ready asks /readyz instead: an explicit opt-in to
// failing on staleness.
func runHealth(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: agent health [--ready] [--addr HOST:PORT] [--config FILE] [--timeout D]

Exit 0 if the agent is healthy: alive, and its first render done (/healthz).
An AWS outage after that does not make it unhealthy: staleness shows on
/readyz, the metrics and the alerts. With --ready, exit 0 only if it is also
ready (/readyz: no secret stale and no problem open past refresh.maxStale),
so a container healthCheck fails, and ECS replaces the task, on staleness.

`)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "", "`HOST:PORT` of the agent (default: metricsAddr from --config or AGENT_CONFIG, else 127.0.0.1"+DefaultMetricsAddr+")")
	var flags config.Flags
	fs.StringVar(&flags.ConfigPath, "config", "", "JSON config `FILE`, only to find metricsAddr")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	ready := fs.Bool("ready", false, "ask /readyz instead of /healthz: fail when a secret is stale past refresh.maxStale (opt-in)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	target := *addr
	if target == "" {
		target = "127.0.0.1" + DefaultMetricsAddr
		// Same container, same environment: find the port `run` serves on.
		if s, err := config.Load(flags, getenv); err == nil && s.MetricsAddr != "" {
			target = s.MetricsAddr
		}
	}
	if host, port, err := net.SplitHostPort(target); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		target = net.JoinHostPort("127.0.0.1", port)
	}
	path, okWord, failWord := "/healthz", "healthy", "not healthy:"
	if *ready {
		path, okWord, failWord = "/readyz", "ready", "not ready:"
	}
	hctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := status.Check(hctx, target, path, &http.Client{}); err != nil {
		fmt.Fprintln(stderr, failWord, err)
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	fmt.Fprintln(stdout, okWord)
	return nil
}

// serveEndpoints serves /metrics, /healthz and /readyz on addr for a
// long-running command and returns its status, its metrics and a stop
// function that shuts the server down within the shutdown budget.
func serveEndpoints(addr string, maxStale time.Duration, log *slog.Logger) (*status.Status, *metrics.Metrics, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st := status.New(maxStale, time.Now)
	m := metrics.New(reg, version, func() bool { ok, _ := st.Ready(); return ok })
	bound, shutdown, err := status.Serve(addr, status.Handler(st, reg), log)
	if err != nil {
		log.Error("cannot serve metrics: " + err.Error())
		return nil, nil, nil, &exitError{code: exitFailed, msg: err.Error()}
	}
	log.Info("serving /metrics, /healthz and /readyz", "addr", bound)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
		defer cancel()
		_ = shutdown(ctx)
	}
	return st, m, stop, nil
}

const feedUsage = "change feed `URL` (agent watch --feed-addr): while it answers, no polling calls to AWS; overrides refresh.feed; AGENT_FEED_TOKEN in the environment is sent as its bearer token"

// startFeed runs the change feed's client when s names a feed, sending
// token when set; stop ends it and waits. With none, the loop polls AWS
// itself (a nil Feed).
func startFeed(ctx context.Context, s *config.Settings, token feed.Token, region string, reg prometheus.Registerer, log *slog.Logger) (refresh.Feed, func(), error) {
	if s.Feed == "" {
		return nil, func() {}, nil
	}
	c, err := feed.NewClient(feed.ClientOptions{
		URL: s.Feed, Region: region, Interval: s.Interval, Token: token, Log: log.With("component", "feed"), Registerer: reg,
	})
	if err != nil {
		log.Error("invalid configuration: " + err.Error())
		return nil, nil, &exitError{code: exitUsage, msg: err.Error()}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	log.Info("asking the change feed which secrets moved", "feed", c.URL(), "wait", feed.ClientWait(s.Interval).String(), "token", token.Set())
	return c, func() { cancel(); <-done }, nil
}
