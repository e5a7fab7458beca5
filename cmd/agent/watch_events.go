package main

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/events"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
)

// startEvents takes the change events of the SQS queue at queueURL to
// notify ((*feed.Server).Notify), in a goroutine that wg tracks and that
// ends with ctx (docs/FEED.md "Change events"). No queue, nothing to do.
// Its errors are configuration errors (exit 2).
func startEvents(ctx context.Context, wg *sync.WaitGroup, queueURL string, cfg aws.Config, getenv func(string) string,
	notify func(region, id string), m *metrics.Metrics, log *slog.Logger) error {
	if queueURL == "" {
		return nil
	}
	// The SDK's own clients take these; ours is not the SDK's.
	endpoint := getenv("AWS_ENDPOINT_URL_SQS")
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	q, err := events.NewSQS(queueURL, endpoint, cfg, m.ObserveAPICall)
	if err != nil {
		return err
	}
	log = log.With("component", "events")
	c, err := events.New(events.Options{Queue: q, Notify: notify, Log: log, Registerer: m.Registerer(), Rand: rand.Float64})
	if err != nil {
		return err
	}
	log.Info("taking change events", "queue", queueURL, "region", q.Region)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Run(ctx)
	}()
	return nil
}
