// Package action runs the onChange steps after a refresh cycle that changed
// something: signal a process, or call a reload URL.
package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// Action is one configured onChange step.
type Action interface {
	Kind() string                  // "signal" or "http": a bounded metric label
	Run(ctx context.Context) error // errors say what to fix; never contain a secret
}

// Options are what New needs from outside the config.
type Options struct {
	ProcRoot   string       // default "/proc"; tests point it at a fake tree when needed
	HTTPClient *http.Client // default: a client with no global state
	SelfPID    int          // default os.Getpid(); never signalled

	// Redeploy builds the redeploy action in run and exec mode (it needs
	// the task's metadata and AWS clients, which the caller has); nil means
	// redeploy is not available.
	Redeploy func(config.RedeployAction) (Action, error)

	// Child is the app in exec mode; nil elsewhere. With it, "restart" and
	// a signal with no process or pidFile (meaning the child) are allowed.
	Child Child
}

// Child is the app that `agent exec` runs as its child.
type Child interface {
	Signal(sig os.Signal) error
	// Restart stops the child (SIGTERM, SIGKILL after grace) and starts
	// it again with the current secrets.
	Restart(ctx context.Context, grace time.Duration) error
}

// DefaultGracePeriod is how long a restart waits after SIGTERM.
const DefaultGracePeriod = 10 * time.Second

// New builds the actions in config order. Kinds this mode cannot run
// (redeploy, restart) are an error naming the index and kind. Every error is a
// *config.Error, so the agent exits 2 on it.
func New(cfgs []config.Action, opts Options) ([]Action, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.SelfPID == 0 {
		opts.SelfPID = os.Getpid()
	}
	client := noCrossHostRedirects(opts.HTTPClient)
	actions := make([]Action, 0, len(cfgs))
	for i, c := range cfgs {
		field := fmt.Sprintf("onChange[%d]", i)
		var (
			a   Action
			err error
		)
		switch {
		case c.Signal != nil && opts.Child != nil && c.Signal.Process == "" && c.Signal.PIDFile == "":
			a, err = newChildSignal(field, *c.Signal, opts.Child)
		case c.Signal != nil:
			a, err = newSignal(field, *c.Signal, opts)
		case c.HTTP != nil:
			a, err = newHTTP(field, *c.HTTP, client)
		case c.Redeploy != nil && opts.Redeploy != nil:
			a, err = opts.Redeploy(*c.Redeploy)
			if err != nil {
				err = fmt.Errorf("%s.redeploy: %w", field, err)
			}
		case c.Redeploy != nil:
			err = fmt.Errorf("%s: redeploy is not available here (agent run and agent exec run it)", field)
		case c.Restart != nil && opts.Child != nil:
			a, err = newRestart(field, *c.Restart, opts.Child)
		case c.Restart != nil:
			err = fmt.Errorf("%s: restart needs agent exec (it restarts the app the agent runs)", field)
		default:
			err = fmt.Errorf("%s: no action set: want one of signal, http", field)
		}
		if err != nil {
			return nil, &config.Error{Msg: err.Error()}
		}
		actions = append(actions, a)
	}
	return actions, nil
}

// RunAll runs every action once, in order; a failing action does not stop the
// others, since a broken reload URL should not keep the signal from reaching
// the app. record is called once per action with (kind, "success"|"failure").
// Each failure is logged once here, so callers should not log the returned
// error again. log and record may be nil.
func RunAll(ctx context.Context, actions []Action, log *slog.Logger, record func(kind, outcome string)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for i, a := range actions {
		err := a.Run(ctx)
		outcome := "success"
		if err != nil {
			outcome = "failure"
			log.Error("onChange action failed", "action_index", i, "kind", a.Kind(), "error", err)
			errs = append(errs, fmt.Errorf("onChange[%d]: %w", i, err))
		}
		if record != nil {
			record(a.Kind(), outcome)
		}
	}
	return errors.Join(errs...)
}
