package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

// List prices (us-east-1): Secrets Manager 0.05 USD per 10,000 API calls;
// Parameter Store GetParameters free at standard throughput, 0.05 USD per
// 10,000 once higher throughput is on (which an account needs to go past
// 40 calls a second).
const (
	usdPer10k       = 0.05
	minutesPerMonth = 730 * 60
)

// Result is what one scenario measured. Counts are attempts, as AWS sees
// them (a retried call counts once per attempt).
type Result struct {
	Scenario   Scenario
	Speed      float64
	Services   int
	FileAgents int

	Agents, Watcher, ECS map[string]awsfake.OpCount // attempts by operation, over the span (ECS: to the last start's end)

	ECSStarts, ECSFailed int
	SignatureFailures    int // requests the fake's SigV4 check refused
	LogErrors            int // error lines of the agents
	StaleEvents          int // "refresh failed; keeping the last good value"
	ErrorSamples         []string

	Rotations int
	Latencies []time.Duration // fleet time, one per (rotation, task) delivered
	Missed    int             // (rotation, task) pairs not in the files by the end

	HeapPerAgent float64 // bytes in use after the first renders, over N
	WatcherMem   string
	MeasuredWall time.Duration
	TotalWall    time.Duration
	CPU          time.Duration // user + system of the whole run
}

// latencies pairs each rotation with each agent's first delivery of it or
// of a newer version: a task that slept through one rotation and got the
// next has the older one superseded, not missed.
func (r *Result) latencies(rots []rotation, agents []*agent, speed float64) {
	r.Rotations = len(rots)
	index := map[string]int{}
	for i, rt := range rots {
		index[rt.version] = i
	}
	for _, a := range agents {
		for i, rt := range rots {
			found := false
			for _, d := range a.rec.got {
				j, ok := index[d.version]
				if ok && j >= i && !d.at.Before(rt.at) {
					r.Latencies = append(r.Latencies, time.Duration(float64(d.at.Sub(rt.at))*speed))
					found = true
					break
				}
			}
			if !found {
				r.Missed++
			}
		}
	}
	slices.Sort(r.Latencies)
}

// perMinute is the attempts of op let through (or throttled), per minute
// of fleet time.
func (r *Result) perMinute(m map[string]awsfake.OpCount, op string, throttled bool) float64 {
	n := m[op].Allowed
	if throttled {
		n = m[op].Throttled
	}
	return float64(n) / r.Scenario.Span.Minutes()
}

// fleetOps are the calls the fleet makes (agents and watcher), without
// ECS's own.
func (r *Result) fleetPerMinute(op string, throttled bool) float64 {
	return r.perMinute(r.Agents, op, throttled) + r.perMinute(r.Watcher, op, throttled)
}

func (r *Result) usdSecretsManager() float64 {
	calls := r.fleetPerMinute("GetSecretValue", false) + r.fleetPerMinute("DescribeSecret", false)
	return calls * minutesPerMonth / 10000 * usdPer10k
}

func (r *Result) usdParameterStoreHT() float64 {
	calls := r.fleetPerMinute("GetParameters", false) + r.fleetPerMinute("GetParameter", false)
	return calls * minutesPerMonth / 10000 * usdPer10k
}

func (r *Result) percentile(p float64) string {
	if len(r.Latencies) == 0 {
		return "–"
	}
	i := int(math.Ceil(p*float64(len(r.Latencies)))) - 1
	return fmtDur(r.Latencies[max(i, 0)])
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return fmt.Sprintf("%.1fm", d.Minutes())
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// Header is the Markdown table's head.
const Header = `| scenario | N | fleet calls/min: GetParameters · DescribeSecret · GetSecretValue | throttled/min (fleet) | USD/month Secrets Manager | USD/month Parameter Store (if higher throughput) | rotation → file p50 / p99 / max | not delivered | ECS task starts failed | heap/agent · watcher |
|---|---|---|---|---|---|---|---|---|---|`

// Row is the scenario's line of the table.
func (r *Result) Row() string {
	ops := []string{"GetParameters", "DescribeSecret", "GetSecretValue"}
	var calls []string
	throttled := 0.0
	for _, op := range ops {
		calls = append(calls, fmt.Sprintf("%.0f", r.fleetPerMinute(op, false)))
	}
	for op := range r.Agents {
		throttled += r.perMinute(r.Agents, op, true)
	}
	for op := range r.Watcher {
		throttled += r.perMinute(r.Watcher, op, true)
	}
	lat := "no rotation"
	if r.Rotations > 0 {
		lat = fmt.Sprintf("%s / %s / %s", r.percentile(0.5), r.percentile(0.99), r.percentile(1))
	}
	missed := "–"
	if r.Rotations > 0 {
		missed = fmt.Sprintf("%d of %d", r.Missed, r.Rotations*r.Scenario.N)
	}
	mem := "–"
	if r.Scenario.N > 0 {
		mem = fmt.Sprintf("%.0f KiB", r.HeapPerAgent/1024)
	}
	if r.WatcherMem != "" {
		mem += " · " + r.WatcherMem
	}
	return fmt.Sprintf("| %s (%gx) | %d | %s | %.1f | %.0f | %.0f | %s | %s | %d of %d | %s |",
		r.Scenario.Name, r.Speed, r.Scenario.N, strings.Join(calls, " · "), throttled,
		r.usdSecretsManager(), r.usdParameterStoreHT(), lat, missed, r.ECSFailed, r.ECSStarts, mem)
}

// Detail is a few lines under the table for one scenario: every count.
func (r *Result) Detail() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s: speed %gx; %d services of up to %d tasks, %d agents writing files; %d rotations; wall %s measured, %s in all, CPU %s (%.1f cores); agent error lines %d (stale %d); ECS starts %d, failed %d\n",
		r.Scenario.Name, r.Speed, r.Services, (r.Scenario.N+r.Services-1)/max(r.Services, 1), r.FileAgents, r.Rotations,
		r.MeasuredWall.Round(time.Second), r.TotalWall.Round(time.Second), r.CPU.Round(time.Second),
		r.CPU.Seconds()/r.TotalWall.Seconds(), r.LogErrors, r.StaleEvents, r.ECSStarts, r.ECSFailed)
	for _, who := range []struct {
		name string
		m    map[string]awsfake.OpCount
	}{{"agents", r.Agents}, {"watcher", r.Watcher}, {"ECS starts", r.ECS}} {
		if len(who.m) == 0 {
			continue
		}
		var parts []string
		for _, op := range slices.Sorted(maps.Keys(who.m)) {
			parts = append(parts, fmt.Sprintf("%s %d (%d throttled)", op, who.m[op].Allowed, who.m[op].Throttled))
		}
		fmt.Fprintf(&b, "  - %s: %s\n", who.name, strings.Join(parts, "; "))
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(&b, "  - agent error: %s\n", e)
	}
	return b.String()
}
