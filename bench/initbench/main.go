// Command initbench measures `agent init` for 50 parameters and 20 secrets
// against the wire-level fake with a fixed latency on every AWS call, and
// prints a Markdown table: wall time (median and worst of N runs), the
// budget (the binary's start-up alone + two round trips), API calls by
// operation, and peak RSS. Run it with bench/init.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

func main() {
	agent := flag.String("agent", "bin/agent", "the agent binary")
	runs := flag.Int("runs", 20, "runs per measurement")
	latency := flag.Duration("latency", 20*time.Millisecond, "added to every AWS call")
	params := flag.Int("params", 50, "parameters")
	secrets := flag.Int("secrets", 20, "secrets")
	outBase := flag.String("out", "", "directory for the output directories (default: a temp dir)")
	flag.Parse()
	if err := run(*agent, *runs, *latency, *params, *secrets, *outBase); err != nil {
		fmt.Fprintln(os.Stderr, "initbench:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

func run(agent string, runs int, latency time.Duration, nParams, nSecrets int, outBase string) error {
	fake := awsfake.New()
	defer fake.Close()
	fake.SetLatency(latency)
	const region = "us-east-1"
	var cfg []map[string]string
	for i := range nParams {
		p := fmt.Sprintf("/bench/param-%02d", i)
		fake.PutParameter(region, p, fmt.Sprintf("value-%02d-%s", i, strings.Repeat("x", 64)), i%2 == 0)
		cfg = append(cfg, map[string]string{"name": fmt.Sprintf("P%02d", i), "valueFrom": p})
	}
	for i := range nSecrets {
		arn := fake.PutSecretString(region, fmt.Sprintf("bench/secret-%02d", i), fmt.Sprintf(`{"user":"u%d","password":"%s"}`, i, strings.Repeat("p", 32)))
		cfg = append(cfg, map[string]string{"name": fmt.Sprintf("S%02d", i), "valueFrom": arn})
	}
	conf, err := json.Marshal(map[string]any{"secrets": cfg})
	if err != nil {
		return err
	}
	if outBase == "" {
		if outBase, err = os.MkdirTemp("", "initbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(outBase)
	}
	env := append(fake.Env(region), "AGENT_CONFIG="+string(conf))

	// Start-up alone: the same binary, same config, no AWS call.
	startup, err := measure(runs, func(int) *exec.Cmd {
		return exec.Command(agent, "check")
	}, env)
	if err != nil {
		return err
	}
	fake.ResetCounts()
	// Each run writes into a fresh directory: a first render, as in a new task.
	initRuns, err := measure(runs, func(i int) *exec.Cmd {
		return exec.Command(agent, "init", "--output-dir", filepath.Join(outBase, fmt.Sprint(i)))
	}, env)
	if err != nil {
		return err
	}
	calls := map[string]int{}
	for _, c := range fake.CallLog() {
		calls[c.Op]++
	}

	budget := median(startup).wall + 2*latency
	got := median(initRuns).wall
	fmt.Printf("| what | value |\n|---|---|\n")
	fmt.Printf("| references | %d parameters + %d secrets |\n", nParams, nSecrets)
	fmt.Printf("| latency added per AWS call | %s |\n", latency)
	fmt.Printf("| start-up alone (`agent check`), median of %d | %s |\n", runs, round(median(startup).wall))
	fmt.Printf("| budget: 1.5 × (start-up + 2 round trips) | %s |\n", round(budget*3/2))
	fmt.Printf("| `agent init` wall time, median of %d | %s (%.2f× start-up + 2 round trips) |\n", runs, round(got), float64(got)/float64(budget))
	fmt.Printf("| `agent init` wall time, worst of %d | %s |\n", runs, round(worst(initRuns).wall))
	fmt.Printf("| API calls per run | %d GetParameters + %d GetSecretValue (%d in all, %d credential fetches) |\n",
		calls["GetParameters"]/runs, calls["GetSecretValue"]/runs, len(fake.CallLog())/runs, fake.CredentialRequests()/runs)
	fmt.Printf("| peak RSS of `agent init`, worst of %d | %.1f MiB |\n", runs, float64(worst(initRuns).maxRSS)/1024)
	if got > budget*3/2 {
		fmt.Printf("\nover budget: %s > %s\n", round(got), round(budget*3/2))
	}
	return nil
}

func measure(runs int, mk func(int) *exec.Cmd, env []string) ([]sample, error) {
	var out []sample
	for i := range runs {
		cmd := mk(i)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", cmd, err, stderr.String())
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		out = append(out, sample{wall: time.Since(start), maxRSS: ru.Maxrss})
	}
	return out, nil
}

func median(s []sample) sample {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b sample) int { return int(a.wall - b.wall) })
	return s[len(s)/2]
}

func worst(s []sample) sample {
	w := s[0]
	for _, x := range s {
		if x.wall > w.wall {
			w.wall = x.wall
		}
		if x.maxRSS > w.maxRSS {
			w.maxRSS = x.maxRSS
		}
	}
	return w
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
