package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// fleet is the AWS side of a run: the fake, its quotas, and what the tasks
// reference.
type fleet struct {
	fake      *awsfake.Fake
	lim       *awsfake.Limiter
	sharedARN string
	svcARNs   [][]string // per service: its 4 secrets
	svcParams [][]string // per service: its 4 parameters
	seed      atomic.Int64
}

// value is a fresh secret value. Values are random so a test can seed them
// and look for them in the output.
func (fl *fleet) value(what string) string {
	return fmt.Sprintf("value-%s-%d-%x", what, fl.seed.Add(1), rand.Uint64())
}

func newFleet(services int) *fleet {
	fl := &fleet{fake: awsfake.New()}
	fl.lim = awsfake.NewLimiter(fl.fake, nil, nil) // no quota while the agents start
	fl.sharedARN = fl.fake.PutSecretString(region, sharedSecret, fl.value("shared"))
	fl.fake.PutParameter(region, sharedParam, fl.value("shared-param"), true)
	for s := range services {
		var arns, params []string
		for k := 1; k <= 4; k++ {
			arns = append(arns, fl.fake.PutSecretString(region, fmt.Sprintf("svc%d/db%d", s, k), fl.value("svc")))
			p := fmt.Sprintf("/svc%d/p%d", s, k)
			fl.fake.PutParameter(region, p, fl.value("svc-param"), true)
			params = append(params, p)
		}
		fl.svcARNs = append(fl.svcARNs, arns)
		fl.svcParams = append(fl.svcParams, params)
	}
	return fl
}

func (fl *fleet) close() {
	fl.lim.Close()
	fl.fake.Close()
}

// taskConfig is the AGENT_CONFIG of a task of service s: 5 Secrets Manager
// secrets and 5 parameters (one GetParameters batch), the fleet-wide pair
// among them.
func (fl *fleet) taskConfig(s int, outputDir string, interval time.Duration, feedURL string) string {
	type sec struct {
		Name      string `json:"name"`
		ValueFrom string `json:"valueFrom"`
	}
	secs := []sec{{secretName, fl.sharedARN}, {paramName, sharedParam}}
	for k := range 4 {
		secs = append(secs, sec{"S" + strconv.Itoa(k+1), fl.svcARNs[s][k]}, sec{"P" + strconv.Itoa(k+1), fl.svcParams[s][k]})
	}
	c := map[string]any{"secrets": secs, "refresh": map[string]any{"interval": interval.String()}}
	if outputDir != "" {
		c["outputDir"] = outputDir
	}
	if feedURL != "" {
		c["refresh"].(map[string]any)["feed"] = feedURL
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// countingHandler drops log records and counts the agents' errors: a
// refresh that failed makes a secret stale.
type countingHandler struct {
	errors, stale *atomic.Int64
	first         *sync.Map // message → one record's attributes, for the report
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.errors.Add(1)
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.first.LoadOrStore(r.Message, b.String())
	if len(r.Message) >= 14 && r.Message[:14] == "refresh failed" {
		h.stale.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// The AWS callers, told apart by the app id in their User-Agent; the
// watcher, a process of its own, has none.
const (
	appAgents = "fleetsim-agents"
	appECS    = "fleetsim-ecs"
)

func caller(r *http.Request) string {
	ua := r.Header.Get("User-Agent")
	for _, app := range []string{appAgents, appECS} {
		if strings.Contains(ua, "app/"+app) {
			return app
		}
	}
	return ""
}

// Run runs one scenario and measures it.
func Run(ctx context.Context, sc Scenario, o Options) (*Result, error) {
	began := time.Now()
	if sc.Speed > 0 {
		o.Speed = sc.Speed
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / o.Speed) }
	services := max(1, (sc.N+o.TasksPerService-1)/o.TasksPerService)
	fl := newFleet(services)
	defer fl.close()

	// The agents' process environment: the fake's credentials endpoint,
	// and the limiter as the AWS endpoint.
	tmp, err := os.MkdirTemp(o.Dir, "fleetsim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	fl.fake.SetenvIsolated(o.Setenv, region, tmp)
	o.Setenv("AWS_ENDPOINT_URL", fl.lim.URL)

	pool := newPool()
	fl.lim.CountBy(caller)
	agentCfg, err := awsConfig(ctx, appAgents, o.Speed, fetch.MaxAttempts, 10*time.Second, pool)
	if err != nil {
		return nil, err
	}
	interval := scale(5 * time.Minute)
	var logErrors, logStale atomic.Int64
	var firstErrors sync.Map
	log := slog.New(countingHandler{&logErrors, &logStale, &firstErrors})

	var feedURL string
	var fd *feedSide
	if sc.Feed {
		if fd, err = startFeed(ctx, fl, o, o.Speed, sc.N); err != nil {
			return nil, err
		}
		defer fd.stop()
		feedURL = fd.url
	}

	rotName := secretName
	if sc.Rotate == "parameter" {
		rotName = paramName
	}
	filesEvery := max(1, (sc.N+o.MaxFileAgents-1)/o.MaxFileAgents)
	agents := make([]*agent, sc.N)
	for i := range agents {
		dir := ""
		if i%filesEvery == 0 {
			dir = filepath.Join(tmp, "task"+strconv.Itoa(i))
		}
		conf := fl.taskConfig(i%services, dir, interval, feedURL)
		s, err := config.Load(config.Flags{}, func(k string) string {
			if k == "AGENT_CONFIG" {
				return conf
			}
			return ""
		})
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", i, err)
		}
		// Without a directory of its own, the loop renders in memory, as in
		// exec mode (config.Load would give it the default /run/secrets).
		s.OutputDir = dir
		rec := &recorder{name: rotName}
		f := &fetch.Fetcher{Clients: fetch.NewClients(agentCfg), Region: region}
		rng := rand.New(rand.NewPCG(o.Seed, uint64(i)))
		lo := refresh.Options{
			Source: f, Settings: s, Status: status.New(s.MaxStale, time.Now), Log: log, Rand: rng.Float64,
			Actions: func([]config.Action) ([]action.Action, error) { return []action.Action{rec}, nil },
		}
		if fd != nil {
			if err := fd.attach(i, o.Seed, &lo, s); err != nil {
				return nil, err
			}
		}
		loop, err := refresh.New(lo)
		if err != nil {
			return nil, err
		}
		defer loop.Close()
		a := &agent{loop: loop, fetcher: f, rec: rec}
		for _, sec := range s.Secrets {
			a.reqs = append(a.reqs, fetch.Request{Name: sec.Name, Ref: sec.Ref, Optional: sec.Optional})
		}
		agents[i] = a
	}

	// First renders, with no quota: the fleet has been running for a while
	// when the measurement starts.
	progress(o, "%s: %d agents starting", sc.Name, sc.N)
	if err := startAll(ctx, agents); err != nil {
		return nil, err
	}
	if fd != nil {
		fd.startClients(ctx)
		// Concurrent with the loops' Run below would race on their state;
		// before it, each loop's values are its first render's.
		if left := fd.waitCovered(agents, 2*time.Minute); left > 0 {
			progress(o, "%s: %d agents not covered by the feed after 2m", sc.Name, left)
		}
	}

	quotas := o.Quotas
	if quotas == nil {
		quotas = awsfake.DefaultQuotas()
	}
	for i := range quotas {
		quotas[i] = quotas[i].Scaled(o.Speed)
	}
	fl.lim.SetQuotas(quotas)
	fl.lim.Reset()
	logErrors.Store(0)
	logStale.Store(0)
	runtime.GC()
	var msBefore runtime.MemStats
	runtime.ReadMemStats(&msBefore)

	ecs, err := newECSStream(ctx, fl, o, pool)
	if err != nil {
		return nil, err
	}
	progress(o, "%s: measuring %s of fleet time (%s wall)", sc.Name, sc.Span, scale(sc.Span))
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	t0 := time.Now()
	// The fleet's calls are counted over the span. Task starts run to
	// their end.
	var agentsAtEnd, watcherAtEnd map[string]awsfake.OpCount
	spanOver := make(chan struct{})
	end := time.AfterFunc(scale(sc.Span), func() {
		agentsAtEnd, watcherAtEnd = fl.lim.CountsOf(appAgents), fl.lim.CountsOf("")
		if fd != nil {
			fd.readMemory()
		}
		stop()
		close(spanOver)
	})
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() { _ = a.loop.Run(runCtx, refresh.Events{}) })
	}
	wg.Go(func() { ecs.stream(runCtx, sc.StartRate*o.Speed, services) })
	if sc.Burst > 0 {
		wg.Go(func() { ecs.burst(runCtx, t0.Add(scale(sc.BurstAt)), sc.Burst, scale(sc.BurstSpread), services) })
	}
	var rots []rotation
	wg.Go(func() { rots = rotate(runCtx, fl, sc, t0, scale) })
	if fd != nil && sc.KillFeedAt > 0 {
		wg.Go(func() {
			select {
			case <-runCtx.Done():
			case <-time.After(scale(sc.KillFeedAt)):
				fd.kill()
			}
		})
	}
	wg.Wait()
	// Without agents nothing above waits for the span.
	select {
	case <-spanOver:
	case <-ctx.Done():
		if !end.Stop() {
			<-spanOver
		}
		ecs.wait()
		return nil, ctx.Err()
	}
	ecs.wait()
	wall := time.Since(t0)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := &Result{
		Scenario: sc, Speed: o.Speed, Services: services, FileAgents: (sc.N + filesEvery - 1) / filesEvery,
		Agents: agentsAtEnd, Watcher: watcherAtEnd, ECS: fl.lim.CountsOf(appECS), ECSStarts: int(ecs.starts.Load()), ECSFailed: int(ecs.failed.Load()),
		SignatureFailures: fl.fake.SignatureFailures(),
		LogErrors:         int(logErrors.Load()), StaleEvents: int(logStale.Load()),
		HeapPerAgent: float64(msBefore.HeapInuse) / float64(max(sc.N, 1)),
		MeasuredWall: wall, TotalWall: time.Since(began),
		CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()),
	}
	if fd != nil {
		r.WatcherMem = fd.memory()
	}
	firstErrors.Range(func(k, v any) bool {
		r.ErrorSamples = append(r.ErrorSamples, k.(string)+v.(string))
		return len(r.ErrorSamples) < 5
	})
	r.latencies(rots, agents, o.Speed)
	return r, nil
}

// startAll does every agent's first render, a few at a time, then switches
// each to the refresh loop's fewer attempts, as `agent run` does.
func startAll(ctx context.Context, agents []*agent) error {
	sem := make(chan struct{}, 64)
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := a.loop.Start(sctx); err != nil {
				errs[i] = fmt.Errorf("task %d: first render: %w", i, err)
			}
			a.fetcher.Attempts = fetch.RefreshMaxAttempts
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rotation is one new version of the rotating reference.
type rotation struct {
	at      time.Time
	version string
}

// rotate makes a new version of the fleet-wide secret (or parameter) every
// RotateEvery, as a rotation Lambda would, until RotateUntil.
func rotate(ctx context.Context, fl *fleet, sc Scenario, t0 time.Time, scale func(time.Duration) time.Duration) []rotation {
	var out []rotation
	if sc.RotateEvery <= 0 {
		return nil
	}
	for k := 1; time.Duration(k)*sc.RotateEvery <= sc.RotateUntil; k++ {
		t := time.NewTimer(time.Until(t0.Add(scale(time.Duration(k) * sc.RotateEvery))))
		select {
		case <-ctx.Done():
			t.Stop()
			return out
		case <-t.C:
		}
		var v string
		if sc.Rotate == "parameter" {
			v = strconv.FormatInt(fl.fake.PutParameter(region, sharedParam, fl.value("rot"), true), 10)
		} else {
			fl.fake.PutSecretString(region, sharedSecret, fl.value("rot"))
			v = fl.fake.SecretVersionID(region, sharedSecret, "AWSCURRENT")
		}
		out = append(out, rotation{at: time.Now(), version: v})
	}
	return out
}

func progress(o Options, format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
	}
}
