// Package refresh keeps the rendered secrets current: the first render,
// then a loop that polls for rotation at the lowest API cost, rewrites what
// changed, repairs tampered files, and runs the onChange actions once per
// changed cycle.
package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/plan"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// Source is what the loop needs of *fetch.Fetcher.
type Source interface {
	Fetch(ctx context.Context, reqs []fetch.Request) (fetch.Outcome, error)
	Poll(ctx context.Context, reqs []fetch.Request, have map[string]fetch.Result) ([]string, error)
}

// Loop is one agent's refresh state. Its methods are not safe for concurrent
// use: Run owns it.
type Loop struct {
	src      Source
	settings *config.Settings
	actions  []action.Action
	metrics  *metrics.Metrics
	status   *status.Status
	log      *slog.Logger
	rand     func() float64
	now      func() time.Time
	newActs  func([]config.Action) ([]action.Action, error)

	dir        *render.Dir
	have       map[string]fetch.Result // last good value of each secret
	staleSince map[string]time.Time
	sched      *Schedule
}

// Options configure a Loop. Metrics may be nil.
type Options struct {
	Source   Source
	Settings *config.Settings
	Metrics  *metrics.Metrics
	Status   *status.Status
	Log      *slog.Logger
	Rand     func() float64 // for jitter; in [0, 1)
	// Actions builds the onChange actions of a configuration.
	Actions func([]config.Action) ([]action.Action, error)
}

// New checks the settings' actions and returns a loop ready to Start.
func New(o Options) (*Loop, error) {
	acts, err := o.Actions(o.Settings.OnChange)
	if err != nil {
		return nil, err
	}
	return &Loop{
		src: o.Source, settings: o.Settings, actions: acts, metrics: o.Metrics, status: o.Status,
		log: o.Log, rand: o.Rand, now: time.Now, newActs: o.Actions,
		have: map[string]fetch.Result{}, staleSince: map[string]time.Time{},
		sched: NewSchedule(o.Settings.Interval, o.Settings.Jitter, o.Rand),
	}, nil
}

// Close releases the output directory.
func (l *Loop) Close() error {
	if l.dir == nil {
		return nil
	}
	return l.dir.Close()
}

// Start does the first render, all or nothing as `init` does, retrying with
// backoff until ctx ends (the start-up deadline). The agent is ready after.
func (l *Loop) Start(ctx context.Context) error {
	backoff := NewSchedule(l.settings.Interval, 0, l.rand)
	for {
		err := l.firstRender(ctx)
		if err == nil {
			l.status.Rendered()
			l.metrics.SetInterval(l.sched.Interval())
			return nil
		}
		wait := backoff.Next(Failed)
		l.log.Warn("first render failed; retrying", "retry_in", wait.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("no complete first render before the start-up deadline: %w", err)
		case <-time.After(wait):
		}
	}
}

func (l *Loop) firstRender(ctx context.Context) error {
	reqs := requests(l.settings)
	out, err := l.src.Fetch(ctx, reqs)
	l.account(out, err)
	if err != nil {
		return fmt.Errorf("%d secrets could not be resolved", len(fetch.Errors(err)))
	}
	l.have = out.Values
	if _, err = l.render(ctx, "change"); err != nil {
		return err
	}
	l.track(reqs, nil) // every secret fresh, and its series exported from the start
	return nil
}

// Events are the loop's triggers besides its timer.
type Events struct {
	Config <-chan *config.Settings // a reloaded, validated configuration
	Output <-chan struct{}         // something changed in the output directory
}

// repairDelay lets a burst of file events (our own renames among them)
// settle into one pass over the files.
const repairDelay = 250 * time.Millisecond

// Run refreshes until ctx ends.
func (l *Loop) Run(ctx context.Context, ev Events) error {
	timer := time.NewTimer(l.sched.First())
	defer timer.Stop()
	var repair <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			o := l.cycle(ctx)
			if ctx.Err() != nil {
				return nil
			}
			timer.Reset(l.sched.Next(o))
			l.metrics.SetInterval(l.sched.Interval())
		case s := <-ev.Config:
			if l.apply(ctx, s) {
				timer.Reset(l.sched.Next(Succeeded))
			}
		case <-ev.Output:
			if repair == nil {
				repair = time.After(repairDelay)
			}
		case <-repair:
			repair = nil
			if n, err := l.render(ctx, "repair"); err != nil {
				l.log.Error("cannot repair output files: " + err.Error())
			} else if n > 0 {
				l.log.Info("output files repaired", "files", n)
			}
		}
	}
}

// cycle polls, fetches what moved, renders, and acts once if anything changed.
func (l *Loop) cycle(ctx context.Context) Outcome {
	reqs := requests(l.settings)
	moved, pollErr := l.src.Poll(ctx, reqs, l.have)
	failed := failures(pollErr)
	var changed []string
	if len(moved) > 0 {
		out, err := l.src.Fetch(ctx, subset(reqs, moved))
		for name, res := range out.Values {
			if old, ok := l.have[name]; !ok || !old.Value.Equal(res.Value) || old.Binary != res.Binary {
				changed = append(changed, name)
			}
			l.have[name] = res
		}
		for name, e := range failures(err) {
			failed[name] = e
		}
	}
	l.track(reqs, failed)
	if ctx.Err() != nil {
		return Failed
	}
	n, err := l.render(ctx, "change")
	if err != nil {
		l.log.Error("cannot render; the files in place are unchanged: " + err.Error())
	}
	if len(changed) > 0 {
		for _, name := range changed {
			l.metrics.SecretChanged(name)
		}
		l.log.Info("secrets changed", "secrets", changed, "files", n)
		if n > 0 || l.settings.OutputDir == "" {
			_ = action.RunAll(ctx, l.actions, l.log, l.metrics.Action)
		}
	}
	o := outcome(failed)
	l.metrics.RefreshDone(map[Outcome]string{Succeeded: "success", Failed: "failure", Throttled: "throttled"}[o])
	return o
}

// apply switches to a reloaded configuration: fetch what is new, drop what
// is gone, render, and act if values changed. It reports whether the new
// settings were taken.
func (l *Loop) apply(ctx context.Context, s *config.Settings) bool {
	acts, err := l.newActs(s.OnChange)
	if err != nil {
		l.log.Error("reloaded configuration rejected; keeping the old one: " + err.Error())
		return false
	}
	if s.OutputDir != l.settings.OutputDir && l.dir != nil {
		_ = l.dir.Close()
		l.dir = nil
	}
	old := l.settings
	l.settings, l.actions = s, acts
	l.sched = NewSchedule(s.Interval, s.Jitter, l.rand)
	keep := map[string]bool{}
	var missing []fetch.Request
	for _, r := range requests(s) {
		prev, ok := findSecret(old, r.Name)
		if ok && prev.Ref == r.Ref {
			keep[r.Name] = true
			continue
		}
		missing = append(missing, r)
	}
	for name := range l.have {
		if !keep[name] {
			delete(l.have, name)
		}
	}
	for _, sec := range old.Secrets {
		if _, still := findSecret(s, sec.Name); !still {
			delete(l.staleSince, sec.Name)
			l.status.Forget(sec.Name)
			l.metrics.ForgetSecret(sec.Name)
		}
	}
	l.log.Info("configuration reloaded", "secrets", len(s.Secrets), "new_or_changed", len(missing))
	if len(missing) > 0 {
		out, err := l.src.Fetch(ctx, missing)
		for name, res := range out.Values {
			l.have[name] = res
		}
		l.track(missing, failures(err))
	}
	n, err := l.render(ctx, "change")
	if err != nil {
		l.log.Error("cannot render the reloaded configuration; the files in place are unchanged: " + err.Error())
		return true
	}
	if n > 0 || (l.settings.OutputDir == "" && len(missing) > 0) {
		_ = action.RunAll(ctx, l.actions, l.log, l.metrics.Action)
	}
	return true
}

// Values returns the last good value of each secret. Actions call it from
// inside the loop (exec mode's restart builds the child's environment).
func (l *Loop) Values() map[string]fetch.Result { return l.have }

// render writes every planned file from the last good values and returns
// how many changed. With no output directory (exec mode) it only checks
// that the values still plan, and writes nothing.
func (l *Loop) render(ctx context.Context, reason string) (int, error) {
	files, err := plan.Files(l.settings, l.have)
	if err != nil || l.settings.OutputDir == "" {
		return 0, err
	}
	if l.dir == nil {
		dir := l.settings.OutputDir
		waiting := func(holder string) {
			l.log.Warn("waiting for the output directory: another agent holds its lock", "output_dir", dir, "holder", holder)
		}
		if l.dir, err = render.OpenDir(ctx, dir, waiting); err != nil {
			return 0, err
		}
	}
	n, err := l.dir.WriteAll(files)
	if n > 0 {
		l.metrics.FilesWritten(reason, n)
	}
	return n, err
}

// account logs and records a Fetch's skipped and failed secrets (first render).
func (l *Loop) account(out fetch.Outcome, err error) {
	for _, e := range out.Skipped {
		l.log.Warn("optional secret skipped: "+e.Error(), e.LogAttrs()...)
	}
	for _, e := range failures(err) {
		l.log.Error(e.Error(), e.LogAttrs()...)
	}
}

// track marks each request stale or fresh after a cycle, logging only the
// transitions so a long outage is not one line per cycle per secret.
func (l *Loop) track(reqs []fetch.Request, failed map[string]*fetch.Error) {
	now := l.now()
	for _, r := range reqs {
		e, bad := failed[r.Name]
		since, wasStale := l.staleSince[r.Name]
		switch {
		case bad && !wasStale:
			l.staleSince[r.Name] = now
			l.log.Error("refresh failed; keeping the last good value: "+e.Error(), e.LogAttrs()...)
			fallthrough
		case bad:
			l.status.Stale(r.Name, l.staleSince[r.Name], e.Code)
			l.metrics.SecretStale(r.Name)
		case wasStale:
			delete(l.staleSince, r.Name)
			l.log.Info("secret fresh again", "secret", r.Name, "stale_for", now.Sub(since).Round(time.Second).String())
			fallthrough
		default:
			l.status.Fresh(r.Name)
			l.metrics.SecretOK(r.Name, now)
		}
	}
}

func requests(s *config.Settings) []fetch.Request {
	reqs := make([]fetch.Request, len(s.Secrets))
	for i, sec := range s.Secrets {
		reqs[i] = fetch.Request{Name: sec.Name, Ref: sec.Ref, Optional: sec.Optional}
	}
	return reqs
}

func subset(reqs []fetch.Request, names []string) []fetch.Request {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []fetch.Request
	for _, r := range reqs {
		if want[r.Name] {
			out = append(out, r)
		}
	}
	return out
}

func findSecret(s *config.Settings, name string) (fetch.Request, bool) {
	for _, sec := range s.Secrets {
		if sec.Name == name {
			return fetch.Request{Name: sec.Name, Ref: sec.Ref, Optional: sec.Optional}, true
		}
	}
	return fetch.Request{}, false
}

func failures(err error) map[string]*fetch.Error {
	out := map[string]*fetch.Error{}
	for _, e := range fetch.Errors(err) {
		var fe *fetch.Error
		if errors.As(e, &fe) {
			out[fe.Name] = fe
		}
	}
	return out
}

func outcome(failed map[string]*fetch.Error) Outcome {
	o := Succeeded
	for _, e := range failed {
		if e.Code == "ThrottlingException" || e.Code == "TooManyRequestsException" {
			return Throttled
		}
		o = Failed
	}
	return o
}
