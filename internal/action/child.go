package action

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// childSignal signals the app that agent exec runs.
type childSignal struct {
	child   Child
	sig     os.Signal
	sigName string
}

func newChildSignal(field string, c config.SignalAction, child Child) (*childSignal, error) {
	sig, name, err := configuredSignal(field, c)
	if err != nil {
		return nil, err
	}
	return &childSignal{child: child, sig: sig, sigName: name}, nil
}

func (a *childSignal) Kind() string { return "signal" }

func (a *childSignal) Run(context.Context, Change) error {
	if err := a.child.Signal(a.sig); err != nil {
		return fmt.Errorf("signal: %s to the app: %w", a.sigName, err)
	}
	return nil
}

// restart restarts the app that agent exec runs, with the new secrets in
// its environment.
type restart struct {
	child Child
	grace time.Duration
}

func newRestart(field string, c config.RestartAction, child Child) (*restart, error) {
	grace := DefaultGracePeriod
	if c.GracePeriod != "" {
		d, err := time.ParseDuration(c.GracePeriod)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%s.restart.gracePeriod: %q is not a duration", field, c.GracePeriod)
		}
		grace = d
	}
	return &restart{child: child, grace: grace}, nil
}

func (a *restart) Kind() string { return "restart" }

func (a *restart) Run(ctx context.Context, c Change) error {
	if err := a.child.Restart(ctx, c, a.grace); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}
