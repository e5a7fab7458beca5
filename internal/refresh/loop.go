// Package refresh keeps the rendered secrets current: the first render,
// then a loop that polls for rotation at the lowest API cost, rewrites what
// changed, repairs tampered files, and delivers each change to the app
// through the onChange actions, at least once.
package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
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
//
// A change of the secrets is delivered in two steps, and survives a failure
// of either: its values are first "undelivered" (newer than the files) until
// a render succeeds, then "pending" (in the files) until every onChange
// action has succeeded on it. A newer change supersedes a pending one: the
// actions run again, all of them, on the newer snapshot.
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
	written    map[string]bool         // paths the last successful render planned
	have       map[string]fetch.Result // newest value of each secret, rendered or not
	staleSince map[string]time.Time
	sched      *Schedule

	changed     map[string]bool // secrets whose newest value is not yet delivered
	undelivered bool            // a change (values or configuration) not yet rendered
	renderErr   string          // why the files miss the newest values; "" when they hold them
	renderSince time.Time
	removeErr   string // why files no longer configured are still there
	pending     *pending
	retryIn     time.Duration // set when a pending action failed: when to retry
	repairFails int

	keepPending bool   // note a change in progress in the output directory (note.go)
	noted       []byte // what the note holds; nil: no note
	noteErr     string

	feed        Feed            // nil: poll AWS for every secret
	feedRetry   map[string]bool // secrets still behind the feed's version after a fetch
	feedFails   int             // consecutive fetches that left some behind
	feedRetryIn time.Duration   // set when feedRetry is: when to fetch them again
}

// pending is a rendered change whose actions have not all succeeded.
type pending struct {
	change   action.Change
	acts     []action.Action // the actions of the configuration it was rendered with
	todo     []int           // indexes into acts still to succeed, in order
	failures int             // consecutive failed attempts
	since    time.Time
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
	// Feed, when set, is the change feed: the loop polls AWS only for the
	// secrets it does not cover, and fetches what it says moved.
	Feed Feed
	// KeepPending makes a change outlive the process (note.go): for run,
	// whose app keeps running when the agent restarts; not for exec, whose
	// restart restarts the app.
	KeepPending bool
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
		have: map[string]fetch.Result{}, staleSince: map[string]time.Time{}, changed: map[string]bool{},
		sched: newSchedule(o.Settings, o.Rand), feed: o.Feed, keepPending: o.KeepPending,
	}, nil
}

// newSchedule is the refresh schedule of s. Throttling may stretch the
// interval, but never past half of maxStale: an agent that merely slowed
// down must not report its secrets as stale.
func newSchedule(s *config.Settings, rnd func() float64) *Schedule {
	sc := NewSchedule(s.Interval, s.Jitter, rnd)
	sc.Cap = s.MaxStale / 2
	return sc
}

// Close releases the output directory.
func (l *Loop) Close() error {
	if l.dir == nil {
		return nil
	}
	return l.dir.Close()
}

// permanentError is a first render that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Start does the first render, all or nothing as `init` does. Transient
// failures are retried with backoff until ctx ends (the start-up deadline);
// a permanent one (access denied, not found, invalid) ends it at once, since
// the fix is the operator's. The agent is ready after.
func (l *Loop) Start(ctx context.Context) error {
	backoff := NewSchedule(l.settings.Interval, 0, l.rand)
	for {
		replaced, err := l.firstRender(ctx)
		if err == nil {
			l.status.Rendered()
			l.metrics.SetInterval(l.sched.Interval())
			l.restore(replaced)
			l.probe()
			l.hold()
			return nil
		}
		if _, ok := errors.AsType[*permanentError](err); ok {
			return err
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

// firstRender fetches and writes every secret; replaced reports whether it
// changed files that an earlier agent process had written.
func (l *Loop) firstRender(ctx context.Context) (replaced bool, err error) {
	reqs := requests(l.settings)
	out, err := l.src.Fetch(ctx, reqs)
	l.account(out, err)
	if err != nil {
		failed := failures(err)
		err = fmt.Errorf("%d secrets could not be resolved", len(failed))
		for _, e := range failed {
			if e.Class() == fetch.Permanent {
				return false, &permanentError{fmt.Errorf("%w; not retried: AccessDenied, not-found and invalid references need a fix, which the error lines above give", err)}
			}
		}
		return false, err
	}
	l.have = out.Values
	prior := l.keepPending && l.priorFiles(ctx)
	n, err := l.write(ctx, "change")
	if err != nil {
		return false, err
	}
	l.track(reqs, nil) // every secret fresh, and its series exported from the start
	return prior && n > 0, nil
}

// probe checks once, after the first render, that each action's target can
// be found. The app may still be starting, so a miss is a warning.
func (l *Loop) probe() {
	for i, a := range l.actions {
		p, ok := a.(action.Prober)
		if !ok {
			continue
		}
		if err := p.Probe(); err != nil {
			l.log.Warn("onChange action's target not found yet (the app may still be starting): "+err.Error(),
				"action_index", i, "kind", a.Kind())
		}
	}
}

// Events are the loop's triggers besides its timer.
type Events struct {
	Config <-chan *config.Settings // a reloaded, validated configuration
	Output <-chan struct{}         // something changed in the output directory
}

// repairDelay lets a burst of file events (our own renames among them)
// settle into one pass over the files. Failing repairs back off from it.
const repairDelay = 250 * time.Millisecond

// Run refreshes until ctx ends. Actions run inside Run, so none is left
// running when it returns.
func (l *Loop) Run(ctx context.Context, ev Events) error {
	timer := time.NewTimer(l.sched.First())
	defer timer.Stop()
	var repair, retry, feedRetry <-chan time.Time
	var moved <-chan []string
	if l.feed != nil {
		moved = l.feed.Moved()
	}
	if p := l.pending; p != nil {
		retry = time.After(l.actionBackoff(max(p.failures, 1)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			o := l.cycle(ctx)
			if ctx.Err() != nil {
				return nil
			}
			wait := l.sched.Next(o)
			timer.Reset(wait)
			l.metrics.SetInterval(l.sched.Interval())
			l.log.Debug("next refresh", "in", wait.Round(time.Millisecond).String())
		case s := <-ev.Config:
			old := l.sched
			if l.apply(ctx, s) && l.sched != old {
				timer.Reset(l.sched.Next(Succeeded))
			}
		case <-ev.Output:
			if repair == nil {
				repair = time.After(l.repairWait())
			}
		case <-repair:
			repair = nil
			l.deliver(ctx, "repair", false)
		case <-retry:
			retry = nil
			l.runPending(ctx)
		case names := <-moved:
			l.fromFeed(ctx, names)
		case <-feedRetry:
			feedRetry = nil
			l.fromFeed(ctx, nil)
		}
		if ctx.Err() != nil {
			return nil
		}
		if l.retryIn > 0 {
			retry, l.retryIn = time.After(l.retryIn), 0
		}
		if l.feedRetryIn > 0 {
			feedRetry, l.feedRetryIn = time.After(l.feedRetryIn), 0
		}
	}
}

// repairWait doubles the repair delay for each repair that failed in a row,
// up to the interval: files that cannot be written must not turn every
// file event into an error line.
func (l *Loop) repairWait() time.Duration {
	return min(repairDelay<<min(l.repairFails, 16), max(l.settings.Interval, repairDelay))
}

// cycleTimeout bounds one refresh cycle, so a hung call (a network
// blackhole lasts as long as TCP retransmission) makes the secrets stale
// instead of silently aging them.
func cycleTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 10*time.Second), time.Minute)
}

// cycle polls, fetches what moved, and delivers what changed.
func (l *Loop) cycle(ctx context.Context) Outcome {
	cctx, cancel := context.WithTimeout(ctx, cycleTimeout(l.settings.Interval))
	defer cancel()
	reqs := requests(l.settings)
	poll, checked := reqs, reqs
	if l.feed != nil {
		// The covered secrets count as checked: the feed read them within
		// the interval, and they hold what it read.
		// A fetch the feed asked for and that failed has its retry
		// scheduled: polling it too would double the calls on the quota
		// that likely failed it.
		poll = slices.DeleteFunc(l.uncovered(reqs), func(r fetch.Request) bool { return l.feedRetry[r.Name] })
		// Nor do they count as checked: they keep their state.
		checked = slices.DeleteFunc(slices.Clone(reqs), func(r fetch.Request) bool {
			return l.feedRetry[r.Name] && !l.feed.Covered(r, l.have[r.Name].Version)
		})
	}
	var moved []string
	var pollErr error
	if l.feed == nil || len(poll) > 0 {
		moved, pollErr = l.src.Poll(cctx, poll, l.have)
	}
	failed := failures(pollErr)
	if len(moved) > 0 {
		out, err := l.src.Fetch(cctx, subset(reqs, moved))
		l.take(out)
		maps.Copy(failed, failures(err))
	}
	if ctx.Err() != nil {
		// Stopping (SIGTERM), not failing: nothing went stale.
		return Failed
	}
	l.log.Debug("refresh cycle", "secrets", len(reqs), "polled", len(poll), "moved", len(moved), "failed", len(failed))
	l.track(checked, failed)
	l.deliver(ctx, "change", false)
	l.hold()
	o := outcome(failed)
	l.metrics.RefreshDone(map[Outcome]string{Succeeded: "success", Failed: "failure", Throttled: "throttled"}[o])
	return o
}

// take records fetched values; a value that differs from the one held is a
// change to deliver. An optional secret that is gone from AWS is a change
// too: its files are removed, as they would not exist had the agent started
// now.
func (l *Loop) take(out fetch.Outcome) {
	for name, res := range out.Values {
		if old, ok := l.have[name]; !ok || !old.Value.Equal(res.Value) || old.Binary != res.Binary {
			l.changed[name] = true
		}
		l.have[name] = res
	}
	for _, e := range out.Skipped {
		if _, ok := l.have[e.Name]; ok {
			delete(l.have, e.Name)
			l.changed[e.Name] = true
			l.log.Warn("optional secret is gone; removing its files: "+e.Error(), e.LogAttrs()...)
		}
	}
	if len(l.changed) > 0 {
		l.undelivered = true
	}
}

// deliver renders the newest values and, once they are in the files, acts
// on the change they make. A render that fails leaves the change
// undelivered, to be tried again by the next cycle or repair. With
// filesAreChange (a configuration reload), rewritten files are a change
// even if no value moved.
func (l *Loop) deliver(ctx context.Context, reason string, filesAreChange bool) {
	if l.undelivered || filesAreChange {
		l.writeNote(ctx, true) // before the first rename
	}
	defer l.writeNote(ctx, false)
	n, err := l.render(ctx, reason)
	if err != nil {
		l.updatePending()
		return
	}
	if n > 0 && filesAreChange {
		l.undelivered = true
	}
	if l.undelivered {
		names := slices.Sorted(maps.Keys(l.changed))
		for _, name := range names {
			l.metrics.SecretChanged(name)
		}
		if len(names) > 0 {
			l.log.Info("secrets changed", "secrets", names, "files", n)
		}
		clear(l.changed)
		l.undelivered = false
		l.supersede(names)
		// A change still pending otherwise waits for its retry timer:
		// cycles and repairs must not shorten its backoff.
		l.runPending(ctx)
	}
}

// supersede makes the newest rendered state the pending change: every
// action runs on it, whatever an older pending change had done.
func (l *Loop) supersede(names []string) {
	c := action.Change{Settings: l.settings, Values: maps.Clone(l.have), Changed: names}
	for _, n := range names {
		if r, ok := l.have[n]; ok && r.Modified.After(c.At) {
			c.At = r.Modified
		}
	}
	p := &pending{change: c, since: l.now()}
	if old := l.pending; old != nil {
		c.Changed = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(old.change.Changed), names...))))
		c.At = maxTime(c.At, old.change.At)
		p.change, p.since = c, old.since
		l.log.Info("a newer change supersedes the one still being delivered; running every action on the newer one")
	}
	p.acts, p.todo = l.actions, allOf(l.actions)
	l.pending = p
}

// runPending runs the pending change's actions that have not succeeded yet,
// in order; one failing does not keep the others from running. Failures are
// retried with capped backoff (Run waits retryIn).
func (l *Loop) runPending(ctx context.Context) {
	p := l.pending
	if p == nil {
		return
	}
	var failed []int
	var reasons, failing []string
	for _, i := range p.todo {
		a := p.acts[i]
		err := a.Run(ctx, p.change)
		if ctx.Err() != nil {
			return // stopping: not the action's failure
		}
		if err != nil {
			l.metrics.Action(a.Kind(), "failure")
			failed = append(failed, i)
			reasons = append(reasons, fmt.Sprintf("onChange[%d] %s: %v", i, a.Kind(), err))
			failing = append(failing, fmt.Sprintf("onChange[%d] %s", i, a.Kind()))
			continue
		}
		l.metrics.Action(a.Kind(), "success")
		if p.failures > 0 {
			l.log.Info("onChange action succeeded on retry", "action_index", i, "kind", a.Kind(), "attempts", p.failures+1)
		}
	}
	p.todo = failed
	if len(failed) == 0 {
		l.pending = nil
		l.status.Resolved("actions")
		l.updatePending()
		l.writeNote(ctx, false)
		return
	}
	p.failures++
	l.retryIn = l.actionBackoff(p.failures)
	for k, i := range failed {
		l.log.Error("onChange action failed; retrying", "action_index", i, "kind", p.acts[i].Kind(),
			"attempt", p.failures, "retry_in", l.retryIn.String(), "error", reasons[k])
	}
	// Not the errors themselves: /readyz is reachable from outside the
	// task, and an HTTP action's error quotes the app's reply.
	l.status.Problem("actions", "change not delivered: "+strings.Join(failing, ", ")+" failing (the log has why)", p.since)
	l.updatePending()
}

// actionBackoff is 1s doubling per failure, capped at the interval and at a
// minute: an app that is back should not wait long for its reload.
func (l *Loop) actionBackoff(failures int) time.Duration {
	return min(time.Second<<min(failures-1, 16), max(min(l.settings.Interval, time.Minute), time.Second))
}

func (l *Loop) updatePending() {
	l.metrics.ChangePending(l.pending != nil || l.undelivered)
}

// apply switches to a reloaded configuration: fetch what is new, drop what
// is gone (its files too), render, and deliver the change. It reports
// whether the new settings were taken.
func (l *Loop) apply(ctx context.Context, s *config.Settings) bool {
	old := l.settings
	if s.MetricsAddr != old.MetricsAddr {
		l.log.Error(fmt.Sprintf("reloaded configuration rejected; keeping the old one: metricsAddr %q → %q takes a restart of the agent", old.MetricsAddr, s.MetricsAddr))
		return false
	}
	acts, err := l.newActs(s.OnChange)
	if err != nil {
		l.log.Error("reloaded configuration rejected; keeping the old one: " + err.Error())
		return false
	}
	// Fetched before anything is dropped: a secret whose reference changed
	// keeps its last good value, stale, if the new one cannot be read yet,
	// as in any refresh.
	var missing []fetch.Request
	for _, r := range requests(s) {
		if prev, ok := findSecret(old, r.Name); !ok || prev.Ref != r.Ref {
			missing = append(missing, r)
		}
	}
	var out fetch.Outcome
	var ferr error
	if len(missing) > 0 {
		cctx, cancel := context.WithTimeout(ctx, cycleTimeout(s.Interval))
		out, ferr = l.src.Fetch(cctx, missing)
		cancel()
		if ctx.Err() != nil {
			return false // stopping
		}
	}
	var removed []string
	for _, sec := range old.Secrets {
		if _, still := findSecret(s, sec.Name); !still {
			removed = append(removed, sec.Name)
		}
	}
	oldEnv, oldEnvErr := plan.Env(old, l.have)
	if s.OutputDir != old.OutputDir && l.dir != nil {
		// The files in the old directory are no longer kept fresh: remove
		// them rather than leave stale copies readable.
		if _, err := l.dir.Remove(slices.Sorted(maps.Keys(l.written))); err != nil {
			l.log.Error("cannot remove the files from the previous output directory: "+err.Error(), "output_dir", old.OutputDir)
		}
		if l.noted != nil {
			// The change is noted in the new directory as it is delivered there.
			_ = l.dir.ClearPending()
		}
		_ = l.dir.Close()
		l.dir, l.written, l.noted = nil, nil, nil
	} else {
		// Now, whatever the new configuration's render does.
		l.removeFilesOf(old, removed)
	}
	l.settings, l.actions = s, acts
	if s.Interval != old.Interval || s.Jitter != old.Jitter || s.MaxStale != old.MaxStale {
		// Otherwise keep the schedule: a reload must not undo throttling's
		// slow-down or a failing secret's backoff.
		l.sched = newSchedule(s, l.rand)
	}
	l.status.SetMaxStale(s.MaxStale)
	if s.Feed != old.Feed {
		l.log.Warn("refresh.feed changed in the reloaded configuration; a change of feed takes a restart of the agent, which keeps the one it started with")
	}
	for _, name := range removed {
		delete(l.have, name)
		delete(l.staleSince, name)
		delete(l.changed, name)
		l.status.Forget(name)
		l.metrics.ForgetSecret(name)
	}
	l.log.Info("configuration reloaded", "secrets", len(s.Secrets), "new_or_changed", len(missing), "removed", len(removed))
	l.take(out)
	l.track(missing, failures(ferr))
	newEnv, newEnvErr := plan.Env(s, l.have)
	envChanged := s.OutputDir == "" && (oldEnvErr != nil || newEnvErr != nil || !slices.Equal(oldEnv, newEnv))
	if len(removed) > 0 || envChanged || l.pending != nil {
		// A pending change is delivered anew, with the new settings.
		l.undelivered = true
	}
	l.deliver(ctx, "change", true)
	l.hold()
	return true
}

// removeFilesOf removes the files that names alone wrote under old (their
// own files, not the shared env, JSON or template files, which the next
// render rewrites): a removed secret must not stay readable because the
// new configuration fails to render.
func (l *Loop) removeFilesOf(old *config.Settings, names []string) {
	if l.dir == nil || len(names) == 0 {
		return
	}
	only := *old
	only.Secrets = slices.DeleteFunc(slices.Clone(old.Secrets), func(sec config.Secret) bool { return !slices.Contains(names, sec.Name) })
	only.EnvFile, only.JSONFile, only.Templates = "", "", nil
	files, err := plan.Files(&only, l.have)
	if err != nil {
		return // the render's own pass removes what it no longer plans
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	n, err := l.dir.Remove(paths)
	if n > 0 {
		l.log.Info("removed the files of secrets no longer configured", "files", n)
	}
	if err == nil {
		for _, p := range paths {
			delete(l.written, p)
		}
	} // else the render's pass tries again, and reports it
}

// Values returns the last good value of each secret (exec mode builds the
// child's first environment from it).
func (l *Loop) Values() map[string]fetch.Result { return l.have }

// render writes the files from the newest values and records whether they
// hold them: a failure is logged once when it starts and once when it ends,
// and shown by a metric and /readyz while it lasts.
func (l *Loop) render(ctx context.Context, reason string) (int, error) {
	n, err := l.write(ctx, reason)
	now := l.now()
	switch {
	case err != nil && l.renderErr == "":
		l.renderSince = now
		if n > 0 {
			l.log.Error(fmt.Sprintf("render failed after writing %d files; the others keep their previous content: %v", n, err))
		} else {
			l.log.Error("cannot render; the files in place are unchanged: " + err.Error())
		}
		fallthrough
	case err != nil:
		if l.renderErr != "" && l.renderErr != err.Error() {
			l.log.Debug("render still failing: " + err.Error())
		}
		l.renderErr = err.Error()
		l.repairFails++
		l.metrics.RenderFailing(true)
		l.status.Problem("render", "files do not hold the latest values: "+l.renderErr, l.renderSince)
	case l.renderErr != "":
		l.log.Info("render succeeded again; the files hold the latest values", "files", n,
			"failing_for", now.Sub(l.renderSince).Round(time.Second).String())
		l.renderErr, l.repairFails = "", 0
		l.metrics.RenderFailing(false)
		l.status.Resolved("render")
	default:
		l.repairFails = 0
		if reason == "repair" && n > 0 {
			l.log.Info("output files repaired", "files", n)
		}
	}
	return n, err
}

// write writes every planned file from the newest values, removes the files
// that are no longer planned (a removed secret, an optional secret that is
// gone) and returns how many files it changed. With no output directory
// (exec mode) it only checks that the values still plan.
func (l *Loop) write(ctx context.Context, reason string) (int, error) {
	files, err := plan.Files(l.settings, l.have)
	if err != nil || l.settings.OutputDir == "" {
		return 0, err
	}
	if err := l.openDir(ctx); err != nil {
		return 0, err
	}
	planned := make(map[string]bool, len(files))
	for _, f := range files {
		planned[f.Path] = true
	}
	// Removed first: a file "d" that is gone may stand where a new "d/x"
	// needs its directory. And removed even if a write fails below: a
	// removed secret must not stay readable because of some other file.
	var gone []string
	for p := range l.written {
		if !planned[p] {
			gone = append(gone, p)
		}
	}
	removed, rerr := 0, error(nil)
	if len(gone) > 0 {
		slices.Sort(gone)
		removed, rerr = l.dir.Remove(gone)
		if removed > 0 {
			l.log.Info("removed files no longer configured", "files", removed)
		}
	}
	n, werr := l.dir.WriteAll(files)
	l.metrics.FilesWritten(reason, n)
	l.written = planned
	// A file that cannot be removed is its own problem, not a failed
	// render: the files in place hold the latest values, and the change
	// they carry is delivered.
	switch {
	case rerr != nil:
		for _, p := range gone {
			l.written[p] = true // try again next time
		}
		if l.removeErr == "" {
			l.log.Error("cannot remove files no longer configured: " + rerr.Error())
			l.status.Problem("remove", "files no longer configured are still readable: "+rerr.Error(), l.now())
		}
		l.removeErr = rerr.Error()
	case l.removeErr != "":
		l.removeErr = ""
		l.status.Resolved("remove")
	}
	return n + removed, werr
}

// openDir opens the output directory if it is not open.
func (l *Loop) openDir(ctx context.Context) error {
	if l.dir != nil {
		return nil
	}
	dir := l.settings.OutputDir
	waiting := func(holder string) {
		l.log.Warn("waiting for the output directory: another agent holds its lock", "output_dir", dir, "holder", holder)
	}
	// Start waits for another agent's lock up to the start-up
	// deadline; the running loop must not wait at all (a reload to a
	// directory another agent holds would stop every refresh), so it
	// fails this render visibly and tries again later.
	octx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		octx, cancel = context.WithTimeout(ctx, openWait)
	}
	defer cancel()
	d, err := render.OpenDir(octx, dir, waiting)
	if err != nil {
		return err
	}
	l.dir = d
	return nil
}

// openWait bounds how long the running loop waits for the output
// directory's lock.
const openWait = 2 * time.Second

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

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
