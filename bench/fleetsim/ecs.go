package main

import (
	"context"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// The model of ECS's own secret injection at task start: one GetParameters
// with decryption for the task's parameters, made with the execution role
// against the account's Parameter Store quota, 5 attempts with jittered
// exponential backoff up to 20 s (fleet time). A start whose 5 attempts are
// all throttled fails (ResourceInitializationError).
const (
	ecsAttempts   = 5
	ecsMaxBackoff = 20 * time.Second
)

// ecsStream starts tasks: each start is ECS fetching its parameters.
type ecsStream struct {
	ssm     *ssm.Client
	fl      *fleet
	starts  atomic.Int64
	failed  atomic.Int64
	wg      sync.WaitGroup
	speed   float64
	nextSvc atomic.Int64
}

func newECSStream(ctx context.Context, fl *fleet, o Options, pool *awshttp.BuildableClient) (*ecsStream, error) {
	cfg, err := awsConfig(ctx, appECS, o.Speed, ecsAttempts, ecsMaxBackoff, pool)
	if err != nil {
		return nil, err
	}
	// ECS's client does not hold back its retries for its own sake.
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = ecsAttempts
			so.MaxBackoff = ecsMaxBackoff
			so.Backoff = scaledBackoff{retry.NewExponentialJitterBackoff(ecsMaxBackoff), o.Speed}
			so.RateLimiter = ratelimit.None
		})
	}
	return &ecsStream{ssm: ssm.NewFromConfig(cfg), fl: fl, speed: o.Speed}, nil
}

// start is one task start of service s; it runs on after ctx ends, as the
// task would.
func (e *ecsStream) start(s int) {
	e.starts.Add(1)
	e.wg.Go(func() {
		names := append([]string{sharedParam}, e.fl.svcParams[s]...)
		_, err := e.ssm.GetParameters(context.Background(), &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
		if err != nil {
			e.failed.Add(1)
		}
	})
}

// stream starts rate tasks a second (wall time) until ctx ends, over the
// services in turn.
func (e *ecsStream) stream(ctx context.Context, rate float64, services int) {
	if rate <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.start(int(e.nextSvc.Add(1)) % services)
		}
	}
}

// burst starts n tasks evenly over spread from at: a deployment.
func (e *ecsStream) burst(ctx context.Context, at time.Time, n int, spread time.Duration, services int) {
	for i := range n {
		t := time.NewTimer(time.Until(at.Add(spread * time.Duration(i) / time.Duration(n))))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		e.start(int(e.nextSvc.Add(1)) % services)
	}
}

// wait waits for the starts in flight.
func (e *ecsStream) wait() { e.wg.Wait() }
