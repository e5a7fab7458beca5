package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/child"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/plan"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// minRestartGap rate-limits restarts of the app: a burst of rotations
// restarts it at most once in this long.
const minRestartGap = 30 * time.Second

// exitNotFound is what shells and Docker return for a command that cannot run.
const exitNotFound = 127

func runExec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("exec", stderr)
	fs.StringVar(&c.Interval, "interval", "", "refresh interval; setting it (or refresh in the config) keeps the app's secrets fresh")
	fs.StringVar(&c.Feed, "feed", "", feedUsage)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: agent exec [flags] -- COMMAND [ARGS...]")
		fs.PrintDefaults()
	}
	sep := slices.Index(args, "--")
	if sep < 0 || sep == len(args)-1 {
		if slices.ContainsFunc(args[:max(sep, len(args))], isHelpFlag) {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil
		}
		return usageErr(stderr, "exec: usage: agent exec [flags] -- COMMAND [ARGS...]")
	}
	s, log, err := c.parse(fs, args[:sep], getenv, stderr)
	if err != nil {
		return err
	}
	argv := args[sep+1:]
	if !s.OutputDirSet {
		s.OutputDir = "" // exec puts secrets in the environment only, unless asked for files
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		log.Error("cannot run the command: " + err.Error())
		return &exitError{code: exitNotFound, msg: err.Error()}
	}
	startCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	if !s.RefreshSet {
		values, err := resolve(startCtx, s, getenv, log)
		if err != nil {
			return err
		}
		env, err := childEnv(s, values)
		if err == nil && s.OutputDir != "" {
			_, _, err = write(startCtx, s, values, log)
		}
		if err != nil {
			log.Error("the command was not started: " + err.Error())
			return &exitError{code: exitFailed, msg: err.Error()}
		}
		// The app becomes this process, PID 1 of its container as before.
		err = syscall.Exec(path, argv, env)
		log.Error("cannot run the command: " + err.Error())
		return &exitError{code: exitNotFound, msg: err.Error()}
	}
	return superviseExec(ctx, startCtx, s, c, path, argv[1:], getenv, log)
}

// superviseExec runs the command as a child and keeps its secrets fresh.
func superviseExec(ctx, startCtx context.Context, s *config.Settings, c *commonFlags, path string, args []string, getenv func(string) string, log *slog.Logger) error {
	region, err := taskRegion(startCtx, s, getenv)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	cfg, err := fetch.LoadAWSConfig(startCtx, nil)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	app := &appChild{}
	fetcher := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	redeployer := redeployBuilder(ctx, cfg, getenv, log)
	// The feed's client lives as long as the loop: SIGTERM goes to the
	// app, and the agent ends when the app does.
	fd, stopFeed, err := startFeed(context.WithoutCancel(ctx), s, c.feedToken, region, nil, log)
	if err != nil {
		return err
	}
	defer stopFeed()
	loop, err := refresh.New(refresh.Options{
		Source: fetcher, Settings: s, Status: status.New(s.MaxStale, time.Now), Log: log, Rand: rand.Float64, Feed: fd,
		Actions: func(a []config.Action) ([]action.Action, error) {
			return action.New(a, action.Options{Child: app, Redeploy: redeployer, Log: log})
		},
	})
	if err != nil {
		log.Error("invalid configuration: " + err.Error())
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	defer loop.Close()
	if err := loop.Start(startCtx); err != nil {
		log.Error(err.Error() + "; the command was not started")
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	env, err := childEnv(s, loop.Values())
	if err != nil {
		log.Error("the command was not started: " + err.Error())
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	sup, err := child.Start(path, args, env, minRestartGap, log)
	if err != nil {
		log.Error(err.Error())
		return &exitError{code: exitNotFound, msg: err.Error()}
	}
	defer sup.Close()
	app.sup = sup
	fetcher.Attempts = fetch.RefreshMaxAttempts
	debug.FreeOSMemory()
	debug.SetGCPercent(longRunningGCPercent)

	// SIGTERM is forwarded to the app, not obeyed: the agent ends when the
	// app does, with its exit code.
	loopCtx, cancelLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelLoop()
	var events refresh.Events
	if c.ConfigPath != "" {
		reload := func() (*config.Settings, error) {
			ns, err := config.Load(c.Flags, getenv)
			if err == nil && !ns.OutputDirSet {
				ns.OutputDir = ""
			}
			return ns, err
		}
		if events, err = refresh.Watch(loopCtx, c.ConfigPath, "", reload, log); err != nil {
			log.Warn("cannot watch the config file; reload needs a restart", "error", err.Error())
		}
	}
	stopLoop := goRun(loopCtx, loop, events)
	defer stopLoop()
	log.Info("app started; keeping its secrets fresh", "pid", sup.Pid(), "interval", s.Interval.String())
	code := <-sup.Exited()
	stopLoop()
	log.Info("app exited", "code", code)
	if code != 0 {
		return &exitError{code: code, msg: fmt.Sprintf("app exited with %d", code)}
	}
	return nil
}

// goRun runs the loop in the background. stop cancels it and waits until
// Run has returned, so the deferred Closes never pull the output root from
// under a render or the child from under an action; it may be called again.
func goRun(ctx context.Context, loop interface {
	Run(context.Context, refresh.Events) error
}, ev refresh.Events) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = loop.Run(ctx, ev) }()
	return func() { cancel(); <-done }
}

// appChild is the app as the restart and signal actions see it.
type appChild struct {
	sup *child.Supervisor
}

func (a *appChild) Signal(sig os.Signal) error { return a.sup.Signal(sig) }

// Restart builds the new child's environment from the change's own
// settings and values: a reload that added a secret restarts with it.
func (a *appChild) Restart(ctx context.Context, c action.Change, grace time.Duration) error {
	env, err := childEnv(c.Settings, c.Values)
	if err != nil {
		return err
	}
	return a.sup.Restart(ctx, env, grace)
}

// childEnv is the agent's environment without its own settings and the
// feed's tokens (the app has no business with them), with every secret
// added (a secret wins over a variable of the same name).
func childEnv(s *config.Settings, values map[string]fetch.Result) ([]string, error) {
	secrets, err := plan.Env(s, values)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{"AGENT_CONFIG": true, feed.TokenEnv: true, feed.TokenPreviousEnv: true}
	for _, kv := range secrets {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !names[name] {
			env = append(env, kv)
		}
	}
	return append(env, secrets...), nil
}

// runInstall copies this binary to DIR/agent, so an init container can put
// the agent into a volume the app container runs it from.
func runInstall(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelpFlag(args[0]) {
		fmt.Fprintln(stdout, "usage: agent install DIR\n\ncopies this binary to DIR/agent (mode 0755, atomically), for `agent exec` from another container")
		return nil
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return usageErr(stderr, "install: usage: agent install DIR")
	}
	self, err := os.Executable()
	if err != nil {
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	dst := filepath.Join(args[0], "agent")
	if err := copyExecutable(self, dst); err != nil {
		fmt.Fprintln(stderr, "agent install:", err)
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	fmt.Fprintln(stdout, "installed", dst)
	return nil
}

// copyExecutable writes src to dst atomically (temp file, sync, rename),
// mode 0755.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".agent-install-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return errors.Join(fmt.Errorf("install %s", dst), err)
	}
	return nil
}

func isHelpFlag(a string) bool {
	switch a {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}
