package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/plan"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

func runInit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("init", stderr)
	s, log, err := c.parse(fs, args, getenv, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	start := time.Now()
	values, err := resolve(ctx, s, getenv, log)
	if err != nil {
		return err
	}
	n, changed, err := write(ctx, s, values, log)
	if err != nil {
		log.Error("cannot write secrets: "+err.Error()+"; files already in place are unchanged", "output_dir", s.OutputDir)
		return &exitError{code: exitFailed, msg: err.Error()}
	}
	log.Info("secrets written", "output_dir", s.OutputDir, "secrets", len(values),
		"files", n, "changed", changed, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// resolve fetches every secret; on any failure of a non-optional secret it
// logs one line per failing secret and returns an error: fail closed.
func resolve(ctx context.Context, s *config.Settings, getenv func(string) string, log *slog.Logger) (map[string]fetch.Result, error) {
	region, err := taskRegion(ctx, s, getenv)
	if err != nil {
		log.Error(err.Error())
		return nil, &exitError{code: exitFailed, msg: err.Error()}
	}
	cfg, err := fetch.LoadAWSConfig(ctx, nil)
	if err != nil {
		log.Error(err.Error())
		return nil, &exitError{code: exitFailed, msg: err.Error()}
	}
	f := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	reqs := make([]fetch.Request, len(s.Secrets))
	for i, sec := range s.Secrets {
		reqs[i] = fetch.Request{Name: sec.Name, Ref: sec.Ref, Optional: sec.Optional}
	}
	out, err := f.Fetch(ctx, reqs)
	if errors.Is(ctx.Err(), context.Canceled) {
		// SIGTERM, not a failure of AWS or of the start-up deadline.
		msg := "stopped before every secret was resolved; nothing was written"
		log.Info(msg)
		return nil, &exitError{code: exitFailed, msg: msg}
	}
	for _, e := range out.Skipped {
		log.Warn("optional secret skipped: "+e.Error(), e.LogAttrs()...)
	}
	if err != nil {
		var failed int
		for _, e := range fetch.Errors(err) {
			failed++
			var fe *fetch.Error
			if errors.As(e, &fe) {
				log.Error(fe.Error(), fe.LogAttrs()...)
			} else {
				log.Error(e.Error())
			}
		}
		msg := fmt.Sprintf("%d of %d secrets could not be resolved; nothing was written", failed, len(reqs))
		log.Error(msg)
		return nil, &exitError{code: exitFailed, msg: msg}
	}
	return out.Values, nil
}

// taskRegion is the region for bare Parameter Store names (see
// taskRegionOf), needed only when some reference is a bare name.
func taskRegion(ctx context.Context, s *config.Settings, getenv func(string) string) (string, error) {
	needed := false
	for _, sec := range s.Secrets {
		needed = needed || sec.Ref.Region == ""
	}
	if !needed {
		return "", nil
	}
	r, err := taskRegionOf(ctx, getenv)
	if err != nil {
		return "", fmt.Errorf("no region for Parameter Store names: set AWS_REGION, run in an ECS task, or use full ARNs (%v)", err)
	}
	return r, nil
}

// write renders every file in memory, then writes them; it returns how many
// files it wrote and how many of those changed.
func write(ctx context.Context, s *config.Settings, values map[string]fetch.Result, log *slog.Logger) (n, changed int, err error) {
	files, err := plan.Files(s, values)
	if err != nil {
		return 0, 0, err
	}
	waiting := func(holder string) {
		log.Warn("waiting for the output directory: another agent holds its lock", "output_dir", s.OutputDir, "holder", holder)
	}
	dir, err := render.OpenDir(ctx, s.OutputDir, waiting)
	if err != nil {
		return 0, 0, err
	}
	defer dir.Close()
	changed, err = dir.WriteAll(files)
	return len(files), changed, err
}
