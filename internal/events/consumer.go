package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Queue is what the consumer needs of SQS; *SQS is the real one.
type Queue interface {
	// Receive long-polls for messages: it may return none.
	Receive(ctx context.Context) ([]Message, error)
	// Delete deletes messages that Receive returned.
	Delete(ctx context.Context, msgs []Message) error
}

// Backoff after a failed call: MinBackoff, doubling up to MaxBackoff,
// reset by a call that succeeds.
const (
	MinBackoff = time.Second
	MaxBackoff = time.Minute
)

// Reasons of ecs_secrets_agent_events_errors_total, a bounded set.
const (
	ReasonReceive = "receive"
	ReasonDelete  = "delete"
)

// Options configure a Consumer.
type Options struct {
	Queue Queue
	// Notify is told of each change: a parameter or secret (name or ARN)
	// in a region; (*feed.Server).Notify. It must not block.
	Notify func(region, id string)
	Log    *slog.Logger
	// Registerer takes the consumer's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Rand jitters each backoff down by up to a fifth (so that watchers
	// that failed together do not retry together); nil does not jitter.
	Rand func() float64
}

// Consumer takes change events from a queue to Notify. Run it.
type Consumer struct {
	o        Options
	received *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

// New returns a consumer with its metrics registered.
func New(o Options) (*Consumer, error) {
	if o.Queue == nil || o.Notify == nil || o.Log == nil {
		return nil, errors.New("events: Queue, Notify and Log are required")
	}
	c := &Consumer{
		o: o,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_secrets_agent_events_received_total",
			Help: "Change event messages taken from the SQS queue, by kind (parameter, secret, ignored, malformed); every one is deleted.",
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_secrets_agent_events_errors_total",
			Help: "Failed SQS calls of the change event consumer, by reason (receive, delete).",
		}, []string{"reason"}),
	}
	for _, k := range []string{KindParameter, KindSecret, KindIgnored, KindMalformed} {
		c.received.WithLabelValues(k)
	}
	for _, r := range []string{ReasonReceive, ReasonDelete} {
		c.errors.WithLabelValues(r)
	}
	if o.Registerer != nil {
		for _, col := range []prometheus.Collector{c.received, c.errors} {
			if err := o.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("events: registering metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run receives, notifies and deletes until ctx ends. Failed calls are
// retried with backoff; a message is deleted once Notify has been told of
// it, or at once when it names no change (ignored or malformed), so that
// nothing blocks the queue.
func (c *Consumer) Run(ctx context.Context) {
	var (
		backoff      time.Duration
		failingSince time.Time
	)
	for ctx.Err() == nil {
		reason, err := c.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if backoff > 0 {
				c.o.Log.Info("events queue recovered", "failing_for", time.Since(failingSince).Round(time.Millisecond).String())
			}
			backoff = 0
			continue
		}
		c.errors.WithLabelValues(reason).Inc()
		if backoff == 0 {
			backoff, failingSince = MinBackoff, time.Now()
		} else {
			backoff = min(2*backoff, MaxBackoff)
		}
		wait := backoff
		if c.o.Rand != nil {
			wait -= time.Duration(c.o.Rand() * float64(backoff) / 5)
		}
		level := slog.LevelDebug
		if backoff == MinBackoff {
			level = slog.LevelWarn // the first failure of a run; the rest at debug until it recovers
		}
		c.o.Log.Log(ctx, level, "events queue failing", "reason", reason, "error", err.Error(), "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// once is one receive, its notices and its delete; on failure it says
// which call failed.
func (c *Consumer) once(ctx context.Context) (reason string, err error) {
	msgs, err := c.o.Queue.Receive(ctx)
	if err != nil {
		return ReasonReceive, err
	}
	for _, m := range msgs {
		ev, err := Parse([]byte(m.Body))
		c.received.WithLabelValues(ev.Kind).Inc()
		switch ev.Kind {
		case KindMalformed:
			c.o.Log.Warn("deleting a malformed event message", "message_id", m.ID, "error", err.Error())
		case KindIgnored:
			c.o.Log.Debug("deleting an event that changes nothing tracked", "message_id", m.ID)
		default:
			for _, id := range ev.IDs {
				c.o.Notify(ev.Region, id)
			}
			c.o.Log.Debug("change event", "message_id", m.ID, "kind", ev.Kind, "region", ev.Region, "id", ev.IDs[0])
		}
	}
	if err := c.o.Queue.Delete(ctx, msgs); err != nil {
		return ReasonDelete, err
	}
	return "", nil
}
