// Command fleetsim runs a fleet of agents in one process against the
// wire-level fake with the account's quotas enforced, and prints, per
// scenario, the AWS calls a minute, throttles, dollars a month, rotation to
// file latency, ECS task starts that failed, and memory (issue 10 item 6).
//
// Each agent is the real thing: refresh.Loop with fetch.Fetcher and real
// SDK clients over HTTP (SigV4, container credentials). Time is compressed
// -speed times: the agents' interval and jitter, the SDK's retry backoff,
// the rotations and the task starts run that much faster, and the quotas
// refill that much faster (their bucket sizes stay), so every ratio holds.
// Run every scenario with bench/fleetsim.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"
)

func main() {
	speed := flag.Float64("speed", 10, "time compression: fleet seconds per wall second")
	only := flag.String("run", "", "comma-separated scenario names (default: all)")
	list := flag.Bool("list", false, "list the scenarios and exit")
	dir := flag.String("dir", defaultDir(), "where the agents' output directories go")
	agentBin := flag.String("agent", "bin/agent", "the agent binary, the watcher of the feed scenarios")
	n := flag.Int("n", 0, "override the scenarios' N (a quick look; the table's rows use their own)")
	span := flag.Duration("span", 0, "override the scenarios' measured span (fleet time)")
	noHeader := flag.Bool("no-header", false, "print the rows only")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on `HOST:PORT` (to see where a run's time goes)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *speed, *only, *list, *dir, *agentBin, *n, *span, *noHeader); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func defaultDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func run(ctx context.Context, speed float64, only string, list bool, dir, agentBin string, n int, span time.Duration, noHeader bool) error {
	all := Scenarios()
	if list {
		for _, sc := range all {
			fmt.Println(sc.Name)
		}
		return nil
	}
	var pick []Scenario
	for _, sc := range all {
		if only == "" || slices.Contains(strings.Split(only, ","), sc.Name) {
			if n > 0 {
				sc.N = n
			}
			if span > 0 {
				sc.Span = span
			}
			pick = append(pick, sc)
		}
	}
	if len(pick) == 0 {
		return fmt.Errorf("no scenario named %q (-list)", only)
	}
	o := Options{Speed: speed, TasksPerService: 100, MaxFileAgents: 2000, Dir: dir, Seed: 1, Progress: os.Stderr, Agent: agentBin,
		Setenv: func(k, v string) { _ = os.Setenv(k, v) }}
	if !noHeader {
		fmt.Printf("time compressed Sx (after each scenario's name; %gx unless given): intervals, jitter, SDK backoff, rotations and task starts run S times faster, quota refill rates are S times higher, bucket sizes unchanged\n\n", speed)
		fmt.Println(Header)
	}
	var details []string
	for _, sc := range pick {
		r, err := Run(ctx, sc, o)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		fmt.Println(r.Row())
		details = append(details, r.Detail())
	}
	fmt.Println()
	fmt.Print(strings.Join(details, ""))
	return nil
}

// Scenarios are the runs of issue 10 item 6, the N = 10,000 rows first.
// Every agent has the defaults: interval 5m (jitter 30s), 5 Secrets
// Manager secrets and 5 parameters (one GetParameters batch); tasks come
// 100 to a service, and one secret and one parameter are fleet-wide.
// ECS starts a task of the fleet every 7,200/N seconds (tasks live 2 hours
// on average).
func Scenarios() []Scenario {
	rot := func(name string, n int, feed bool) Scenario {
		return Scenario{Name: name, N: n, Feed: feed, Span: 12 * time.Minute,
			RotateEvery: time.Minute, RotateUntil: 6 * time.Minute, Rotate: "secret",
			StartRate: float64(n) / 7200}
	}
	burst := func(name string, n int, feed bool) Scenario {
		return Scenario{Name: name, N: n, Feed: feed, Span: 5 * time.Minute, StartRate: float64(n) / 7200,
			Burst: 1000, BurstAt: time.Minute, BurstSpread: time.Minute}
	}
	// A fleet-wide parameter rotating: every task's fetch goes to the
	// Parameter Store quota that ECS's task starts need.
	param := func(sc Scenario) Scenario {
		sc.Rotate = "parameter"
		return sc
	}
	killed := rot("feed-killed-1000", 1000, true)
	killed.KillFeedAt = 3*time.Minute + 30*time.Second
	// The simulator costs about 1 ms of CPU per AWS call, and the 2 cores
	// are shared: 10,000 agents (200 calls a second) run in real time,
	// over a shorter span.
	slow := func(sc Scenario) Scenario {
		sc.Speed = 1
		if sc.RotateEvery > 0 {
			sc.Span, sc.RotateUntil = 8*time.Minute, 2*time.Minute
		} else {
			sc.Span = 4 * time.Minute
		}
		return sc
	}
	return []Scenario{
		slow(rot("direct-10000", 10000, false)),
		slow(rot("feed-10000", 10000, true)),
		rot("direct-1000", 1000, false),
		rot("feed-1000", 1000, true),
		rot("direct-100", 100, false),
		rot("feed-100", 100, true),
		killed,
		burst("burst-no-agents", 0, false),
		slow(burst("burst-direct-10000", 10000, false)),
		slow(burst("burst-feed-10000", 10000, true)),
		slow(param(rot("feed-param-10000", 10000, true))),
		param(rot("direct-param-1000", 1000, false)),
		param(rot("feed-param-1000", 1000, true)),
	}
}
