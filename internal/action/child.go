package action

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// childSignal signals the app that agent exec runs.
type childSignal struct {
	child   Child
	sig     os.Signal
	sigName string
	log     *slog.Logger
}

func newChildSignal(c config.SignalAction, opts Options) *childSignal {
	sig, name := signalOf(c)
	return &childSignal{child: opts.Child, sig: sig, sigName: name, log: opts.Log}
}

func (a *childSignal) Kind() string { return "signal" }

func (a *childSignal) Run(context.Context, Change) error {
	if err := a.child.Signal(a.sig); err != nil {
		return fmt.Errorf("signal: %s to the app: %w", a.sigName, err)
	}
	a.log.Info("sent "+a.sigName+" to the app", "action", "signal", "signal", a.sigName)
	return nil
}

// restart restarts the app that agent exec runs, with the new secrets in
// its environment. The child logs the restart (old and new pid).
type restart struct {
	child Child
	grace time.Duration
}

func newRestart(c config.RestartAction, opts Options) *restart {
	return &restart{child: opts.Child, grace: c.GracePeriod}
}

func (a *restart) Kind() string { return "restart" }

func (a *restart) Run(ctx context.Context, c Change) error {
	if err := a.child.Restart(ctx, c, a.grace); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}
