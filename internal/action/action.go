// Package action runs the onChange steps after a refresh cycle that changed
// something: signal a process, or call a reload URL.
package action

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// Action is one configured onChange step.
type Action interface {
	Kind() string // "signal", "http", "redeploy" or "restart": a bounded metric label
	// Run acts on c. Errors say what to fix and never contain a secret.
	Run(ctx context.Context, c Change) error
}

// Change is what an action acts on: one change of the secrets, as rendered.
// It is a snapshot that nobody modifies after it is made, so an action that
// runs late (a retry, a background election) acts on the change it was for,
// with the configuration it was rendered with.
type Change struct {
	Settings *config.Settings        // the configuration the values were rendered with
	Values   map[string]fetch.Result // every secret's value, by name
	Changed  []string                // names whose value changed, sorted
	// At dates the change by AWS's clock: the newest modification time among
	// the changed versions. Zero when AWS gave none.
	At time.Time
	// Restored is a change an earlier process of the agent noticed and did
	// not deliver: At dates it, though this process started after it.
	Restored bool
}

// Prober is an action that can check its target before any change: the
// signal action looks for its process or pid file. A failed Probe is worth a
// warning, not a stop: the app may still be starting.
type Prober interface {
	Probe() error
}

// Options are what New needs from outside the config.
type Options struct {
	Log        *slog.Logger // successful actions are logged at info; default: discarded
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
	// it again with the secrets and settings of c.
	Restart(ctx context.Context, c Change, grace time.Duration) error
}

// DefaultGracePeriod is how long a restart waits after SIGTERM.
const DefaultGracePeriod = config.DefaultGracePeriod

// New builds the actions in config order from the typed values config
// parsed and validated. Kinds this mode cannot run (redeploy, restart, a
// signal for the child outside exec) are an error naming the index and kind.
// Every error is a *config.Error, so the agent exits 2 on it.
func New(cfgs []config.Action, opts Options) ([]Action, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.SelfPID == 0 {
		opts.SelfPID = os.Getpid()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
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
			a = newChildSignal(*c.Signal, opts)
		case c.Signal != nil:
			a, err = newSignal(field, *c.Signal, opts)
		case c.HTTP != nil:
			a = newHTTP(*c.HTTP, client, opts.Log)
		case c.Redeploy != nil && opts.Redeploy != nil:
			a, err = opts.Redeploy(*c.Redeploy)
			if err != nil {
				err = fmt.Errorf("%s.redeploy: %w", field, err)
			}
		case c.Redeploy != nil:
			err = fmt.Errorf("%s: redeploy is not available here (agent run and agent exec run it)", field)
		case c.Restart != nil && opts.Child != nil:
			a = newRestart(*c.Restart, opts)
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
