package main

import (
	"context"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
)

const region = "us-east-1"

// The fleet-wide secret and parameter every task holds; rotations change
// one of them, so that a rotation must reach every task.
const (
	sharedSecret = "fleet/shared"
	sharedParam  = "/fleet/shared"
	secretName   = "SHARED_SECRET" // the name tasks give them in their config
	paramName    = "SHARED_PARAM"
)

// Scenario is one run of the fleet. Durations are fleet time: the
// simulator runs them Speed times faster.
type Scenario struct {
	Name  string
	N     int     // agents (tasks running the sidecar)
	Feed  bool    // agents ask the change feed instead of polling AWS
	Speed float64 // overrides Options.Speed when not 0

	Span        time.Duration // measured
	RotateEvery time.Duration // 0: no rotation
	RotateUntil time.Duration // no rotation after this, so that the last ones can land
	Rotate      string        // "secret" or "parameter": which fleet-wide reference rotates

	StartRate   float64       // ECS task starts a second, a steady stream
	Burst       int           // task starts spread over BurstSpread from BurstAt
	BurstAt     time.Duration //
	BurstSpread time.Duration //
	KillFeedAt  time.Duration // 0: the watcher lives
}

// Options are the simulator's own settings, the same for every scenario.
type Options struct {
	Speed           float64 // time compression: fleet seconds per wall second
	TasksPerService int     // tasks share their service's secrets
	MaxFileAgents   int     // at most this many agents write files (each output directory holds 2 descriptors)
	Dir             string  // output directories go under it
	Seed            uint64
	Progress        io.Writer
	// Setenv sets the process environment the agents' SDK configuration
	// reads (os.Setenv; a test's t.Setenv).
	Setenv func(key, value string)
	// Quotas, before scaling; nil means awsfake.DefaultQuotas.
	Quotas []awsfake.Quota
	// Agent is the agent binary, run as `agent watch --feed-addr` for the
	// feed scenarios.
	Agent string
}

// delivery is one change an agent delivered (files written, actions run)
// that carried the rotating reference.
type delivery struct {
	at      time.Time
	version string
}

// recorder is every agent's onChange action: it notes when the rotating
// reference's new version is in the files.
type recorder struct {
	name string // the rotating secret's configured name
	got  []delivery
}

func (r *recorder) Kind() string { return "http" } // a bounded label; never called over HTTP

func (r *recorder) Run(_ context.Context, c action.Change) error {
	if slices.Contains(c.Changed, r.name) {
		r.got = append(r.got, delivery{at: time.Now(), version: c.Values[r.name].Version})
	}
	return nil
}

// agent is one task's sidecar, in process: the real refresh loop, fetcher
// and SDK clients, over HTTP to the fake.
type agent struct {
	loop    *refresh.Loop
	fetcher *fetch.Fetcher
	rec     *recorder
	reqs    []fetch.Request // its secrets, as the loop asks for them
}

// scaledBackoff is the SDK's jittered exponential backoff in fleet time.
type scaledBackoff struct {
	inner retry.BackoffDelayer
	speed float64
}

func (b scaledBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	d, e := b.inner.BackoffDelay(attempt, err)
	return time.Duration(float64(d) / b.speed), e
}

// awsConfig is the agent's configuration (fetch.LoadAWSConfig: container
// credentials, the fake's endpoint) with the SDK's retry backoff scaled to
// fleet time and one connection pool big enough for the fleet. appID goes
// into the User-Agent, which tells the limiter who called.
func awsConfig(ctx context.Context, appID string, speed float64, attempts int, maxBackoff time.Duration, pool *awshttp.BuildableClient) (aws.Config, error) {
	return fetch.LoadAWSConfig(ctx, nil,
		awsconfig.WithAppID(appID),
		awsconfig.WithHTTPClient(pool),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = maxBackoff
				o.Backoff = scaledBackoff{retry.NewExponentialJitterBackoff(maxBackoff), speed}
			})
		}))
}

// newPool is one HTTP transport for every agent. In ECS each task has its
// own; here that would be tens of thousands of idle sockets in one process.
func newPool() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 4096, 4096, 30*time.Second
	})
}
