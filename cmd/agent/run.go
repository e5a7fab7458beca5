package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
)

// Exit codes, SPEC §7.
const (
	exitOK     = 0
	exitFailed = 1 // could not resolve or write
	exitUsage  = 2 // usage or configuration error
)

// exitError carries an exit code; its message has already been logged.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitCode(err error) int {
	var e *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &e):
		return e.code
	}
	return exitFailed
}

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: agent COMMAND [flags]

commands:
  init      resolve every secret, write the files, exit 0 (an init container)
  run       render like init, then keep the files fresh and tell the app (a sidecar)
  health    exit 0 if a running agent is alive and has rendered, 1 if not (a
            container healthCheck; --ready: also fail while a secret is stale)
  exec      resolve every secret into the environment of a command and run it:
            agent exec [flags] -- COMMAND [ARGS...]
  install   copy this binary to DIR/agent, for exec from another container
  policy    print the least-privilege IAM policy for the configuration
  watch     redeploy ECS services whose task-definition secrets rotated:
            agent watch --cluster C --service S [--service S2 ...]
  check     validate the configuration only; no AWS call
  lint      check task definitions for plaintext secrets and agent wiring: agent lint FILE... (- for stdin)
  migrate   rewrite a task definition to use the agent: agent migrate --pattern
            init|sidecar|exec|watch --image IMAGE FILE (- for stdin)
  version   print the version

run "agent COMMAND -h" for the flags of a command.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: exitUsage, msg: "no command"}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "init":
		return runInit(ctx, args, getenv, stdout, stderr)
	case "run":
		return runSidecar(ctx, args, getenv, stderr)
	case "exec":
		return runExec(ctx, args, getenv, stdout, stderr)
	case "watch":
		return runWatch(ctx, args, getenv, stderr)
	case "policy":
		return runPolicy(args, getenv, stdout, stderr)
	case "install":
		return runInstall(args, stdout, stderr)
	case "health":
		return runHealth(ctx, args, getenv, stdout, stderr)
	case "check":
		return runCheck(args, getenv, stdout, stderr)
	case "lint":
		return runLint(args, os.Stdin, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args, getenv, os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "ecs-secrets-agent %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "agent: unknown command %q\n\n%s", cmd, usage)
	return &exitError{code: exitUsage, msg: "unknown command"}
}

// commonFlags are the flags every secret-resolving command shares.
type commonFlags struct {
	config.Flags
	logFormat string
	logLevel  string
	timeout   time.Duration
	// feedToken is AGENT_FEED_TOKEN, read by parse for the commands that
	// take --feed when the settings name a feed.
	feedToken feed.Token
}

type repeated struct{ values *[]string }

func (r repeated) String() string     { return "" }
func (r repeated) Set(v string) error { *r.values = append(*r.values, v); return nil }

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet("agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &commonFlags{}
	fs.StringVar(&c.ConfigPath, "config", "", "JSON config `FILE` (or set AGENT_CONFIG to the JSON itself)")
	fs.Var(repeated{&c.Secrets}, "secret", "a secret as `NAME=VALUEFROM` (repeatable)")
	fs.StringVar(&c.OutputDir, "output-dir", "", "output `DIR` (default "+config.DefaultOutputDir+")")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "start-up deadline: give up resolving after this long")
	return fs, c
}

// parse parses the flags and loads the settings. Errors are usage errors,
// printed here.
func (c *commonFlags) parse(fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) (*config.Settings, *slog.Logger, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, &exitError{code: exitOK, msg: "help"}
		}
		return nil, nil, &exitError{code: exitUsage, msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, nil, usageErr(stderr, "%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return nil, nil, usageErr(stderr, "%s: %v", fs.Name(), err)
	}
	if c.timeout <= 0 {
		return nil, nil, usageErr(stderr, "%s: --timeout must be positive, got %s", fs.Name(), c.timeout)
	}
	s, err := config.Load(c.Flags, getenv)
	if err == nil && s.Feed != "" && fs.Lookup("feed") != nil {
		// From the environment only (ECS injects it from Secrets
		// Manager): a flag or the config file would put it on a command
		// line or in a file.
		c.feedToken, err = feed.ParseToken(feed.TokenEnv, getenv(feed.TokenEnv))
	}
	if err != nil {
		logger.Error("invalid configuration: " + err.Error())
		return nil, nil, &exitError{code: exitUsage, msg: err.Error()}
	}
	return s, logger, nil
}

func usageErr(stderr io.Writer, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(stderr, "agent "+msg)
	return &exitError{code: exitUsage, msg: msg}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is not json or text", format)
}

// runCheck validates a configuration as the command it is for would, with
// the same flags, and makes no AWS call.
func runCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("check", stderr)
	fs.StringVar(&c.Interval, "interval", "", "as for run and exec")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "as for run")
	fs.StringVar(&c.Feed, "feed", "", "as for run and exec")
	forCmd := fs.String("for", "run", "the `COMMAND` the configuration is for: init, run or exec (which onChange actions it allows)")
	s, log, err := c.parse(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	opts := action.Options{Redeploy: checkRedeploy}
	switch *forCmd {
	case "init":
	case "run":
	case "exec":
		opts.Child = noChild{}
	default:
		return usageErr(stderr, "check: --for %q is not init, run or exec", *forCmd)
	}
	if *forCmd != "init" {
		if _, err := action.New(s.OnChange, opts); err != nil {
			log.Error("invalid configuration: " + err.Error())
			return &exitError{code: exitUsage, msg: err.Error()}
		}
	}
	fmt.Fprintf(stdout, "configuration ok for %s: %d secrets, output directory %s\n", *forCmd, len(s.Secrets), s.OutputDir)
	return nil
}

// checkRedeploy accepts any redeploy action when only checking a
// configuration: the real one needs the task's metadata.
func checkRedeploy(config.RedeployAction) (action.Action, error) { return nil, nil }

// noChild stands in for exec's child when only checking a configuration.
type noChild struct{}

func (noChild) Signal(os.Signal) error                                      { return nil }
func (noChild) Restart(context.Context, action.Change, time.Duration) error { return nil }
