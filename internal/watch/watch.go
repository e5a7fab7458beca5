// Package watch is the rotation watcher (`agent watch`): for services that
// keep ECS's native secrets injection, it reads each service's task
// definition, watches every valueFrom it names for a new version, and
// forces one new deployment of each service whose secret changed, so the
// new tasks start with the new value.
//
// It never reads a secret's value: change detection is by version only
// (GetParameters without decryption, DescribeSecret), as in the sidecar's
// polling.
//
// Exactly one deployment per change per service, also alongside in-task
// redeploy actions and other watchers on the same service: the watcher
// acts through internal/redeploy, whose per-service lock every actor shares
// (redeploy.LockPath), and dates a change by AWS: the new version's
// modification time (Parameter Store's LastModifiedDate, Secrets Manager's
// LastChangedDate, both from the polling call at no extra cost), never by
// when it noticed. A service whose newest deployment was created after
// that date is skipped (its tasks read the new value); otherwise the
// redeploy package checks again under the lock and calls UpdateService at
// most once for all actors. (Comparing AWS dates from SSM or Secrets
// Manager with ECS's createdAt assumes AWS's own clocks agree.)
//
// A watcher that starts (or restarts) recovers what changed while nobody
// watched: a secret whose date is after the service's newest deployment
// may be held with its old value by the service's tasks, so that service
// is redeployed once.
//
// ECS quotas are per account and region and shared with every deploy
// pipeline, so the watcher paces itself per region with token buckets
// (burst 1): UpdateService at 5 a second, DescribeServices and
// DescribeTaskDefinition together at 20 a second. A cycle reads ECS with
// ceil(services/10) DescribeServices per cluster and region, plus one
// DescribeTaskDefinition per task definition revision not read before.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// ECSClient is the part of *ecs.Client the watcher uses.
type ECSClient interface {
	DescribeServices(ctx context.Context, params *ecs.DescribeServicesInput, optFns ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	DescribeTaskDefinition(ctx context.Context, params *ecs.DescribeTaskDefinitionInput, optFns ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
	UpdateService(ctx context.Context, params *ecs.UpdateServiceInput, optFns ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
}

// Source is what the watcher needs of *fetch.Fetcher: versions, never
// values.
type Source interface {
	Versions(ctx context.Context, reqs []fetch.Request) (map[string]fetch.Version, error)
}

// Target is one service to watch. Region is the service's region, which is
// also where its task definition's bare Parameter Store names resolve.
type Target struct{ Cluster, Service, Region string }

func (t Target) String() string { return t.Region + "/" + t.Cluster + "/" + t.Service }

// Options configure a Watcher. Metrics may be nil; Status, Log, Rand and
// Now default to a fresh Status, a discarding logger, math/rand and
// time.Now.
type Options struct {
	ECS func(region string) ECSClient
	// SSM is the client for the redeploy locks in a region (the service's).
	SSM     func(region string) redeploy.SSMClient
	Source  Source
	Targets []Target
	// Owner names this watcher in lock records (its task ARN, else a host
	// name); default "agent-watch".
	Owner string
	// TakeoverAfter and MaxWait are passed to redeploy.Options.
	TakeoverAfter, MaxWait time.Duration

	Interval, Jitter time.Duration // between polls; Interval 0 means 5m
	DryRun           bool          // log "would redeploy" and call nothing that writes

	// Client-side limits on ECS calls, per region; 0 means
	// DefaultUpdatesPerSecond and DefaultDescribesPerSecond.
	UpdatesPerSecond, DescribesPerSecond float64

	Log     *slog.Logger
	Metrics *metrics.Metrics
	Status  *status.Status
	Rand    func() float64 // for jitter; in [0, 1)
	Now     func() time.Time
}

// Attempts per describe call. UpdateService is tried once (internal/redeploy:
// it has no idempotency token); when it fails, the next cycle's check under
// the lock shows whether it took effect before it is tried again.
const (
	describeAttempts = fetch.RefreshMaxAttempts
	updateWorkers    = 5 // redeploys in flight; the limiter sets the pace
)

// Watcher is one rotation watcher. Run owns it.
type Watcher struct {
	o        Options
	log      *slog.Logger
	status   *status.Status
	sched    *refresh.Schedule
	services []*service

	have       map[string]fetch.Version // by reference key
	staleSince map[string]time.Time     // by reference key
	badRefs    map[string]bool          // unparseable valueFroms, logged once
	groupErr   map[string]string        // DescribeServices error code by region/cluster, logged on change
	limitsMu   sync.Mutex               // updates run concurrently
	limits     map[string]*limits       // by region
}

// service is what the watcher knows of one target.
type service struct {
	Target
	arn      string               // from DescribeServices
	state    string               // "" (listed and ACTIVE), or why not: MISSING, INACTIVE…
	taskDef  string               // the task definition ARN DescribeServices last named
	readTD   string               // the one refs were read from
	tdErr    string               // DescribeTaskDefinition error code for taskDef, logged on change
	refs     []ref                // every secret of readTD
	newest   time.Time            // the newest deployment's createdAt
	fresh    bool                 // described in this cycle, so newest is current
	pending  map[string]time.Time // changed references awaiting a redeploy → AWS's date of each change
	known    map[string]string    // reference key → the version this service's change detection last saw
	failures int                  // consecutive redeploy failures
	locked   *redeploy.Redeployer // made on first use
}

// ref is one secret of a task definition.
type ref struct {
	key       string // the reference in its region: Request.Name
	container string
	name      string // the secret's name in the task definition
	valueFrom string
	parsed    fetch.Ref
}

// New returns a watcher; Run starts it.
func New(o Options) *Watcher {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Owner == "" {
		o.Owner = "agent-watch"
	}
	if o.UpdatesPerSecond <= 0 {
		o.UpdatesPerSecond = DefaultUpdatesPerSecond
	}
	if o.DescribesPerSecond <= 0 {
		o.DescribesPerSecond = DefaultDescribesPerSecond
	}
	st := o.Status
	if st == nil {
		st = status.New(3*o.Interval, o.Now)
	}
	w := &Watcher{
		o: o, log: o.Log, status: st,
		sched:      refresh.NewSchedule(o.Interval, o.Jitter, o.Rand),
		have:       map[string]fetch.Version{},
		staleSince: map[string]time.Time{},
		badRefs:    map[string]bool{},
		groupErr:   map[string]string{},
		limits:     map[string]*limits{},
	}
	seen := map[Target]bool{}
	for _, t := range o.Targets {
		if !seen[t] {
			seen[t] = true
			w.services = append(w.services, &service{Target: t, pending: map[string]time.Time{}, known: map[string]string{}})
		}
	}
	return w
}

// Validate reports the first target without a cluster, service or region,
// or a missing client or source.
func (w *Watcher) Validate() error {
	if w.o.ECS == nil || w.o.SSM == nil || w.o.Source == nil {
		return errors.New("watch: ECS, SSM and Source are required")
	}
	if len(w.services) == 0 {
		return errors.New("no service to watch: give --service at least once")
	}
	for _, s := range w.services {
		if s.Cluster == "" || s.Service == "" || s.Region == "" {
			return fmt.Errorf("service %q: cluster, service and region are required", s.Target.String())
		}
	}
	return nil
}

// Run reads every service and every secret's version at once (redeploying
// a service whose secret changed after its newest deployment: what changed
// while no watcher ran), then polls every interval (± jitter, backing off on failure and
// slowing down when throttled) until ctx ends. It returns an error only
// for invalid options.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.Validate(); err != nil {
		return err
	}
	w.log.Info("watching services", "services", len(w.services), "interval", w.o.Interval.String(), "dry_run", w.o.DryRun)
	o := w.Cycle(ctx)
	w.status.Rendered()
	if ctx.Err() != nil {
		return nil
	}
	timer := time.NewTimer(w.sched.Next(o))
	defer timer.Stop()
	w.o.Metrics.SetInterval(w.sched.Interval())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			o := w.Cycle(ctx)
			if ctx.Err() != nil {
				return nil
			}
			timer.Reset(w.sched.Next(o))
			w.o.Metrics.SetInterval(w.sched.Interval())
		}
	}
}

// Cycle is one pass: DescribeServices for every service (in batches of 10
// per cluster and region), DescribeTaskDefinition for a service on a new
// revision, one version poll of every distinct reference, and one
// redeploy (under the shared lock) for each service with a secret that
// changed, or, on a reference's first sight, that changed after the
// service's newest deployment. Run calls it; it is exported for tests and
// benchmarks that drive cycles themselves.
func (w *Watcher) Cycle(ctx context.Context) refresh.Outcome {
	var res result
	w.describeServices(ctx, &res)
	w.readTaskDefinitions(ctx, &res)
	w.poll(ctx, &res)
	if ctx.Err() == nil {
		w.redeploy(ctx, &res)
	}
	o := res.outcome()
	w.o.Metrics.RefreshDone(map[refresh.Outcome]string{refresh.Succeeded: "success", refresh.Failed: "failure", refresh.Throttled: "throttled"}[o])
	return o
}

// result accumulates how a cycle went.
type result struct {
	mu                sync.Mutex
	failed, throttled bool
}

func (r *result) fail(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	if code == "ThrottlingException" || code == "TooManyRequestsException" {
		r.throttled = true
	}
}

func (r *result) outcome() refresh.Outcome {
	switch {
	case r.throttled:
		return refresh.Throttled
	case r.failed:
		return refresh.Failed
	}
	return refresh.Succeeded
}

func (w *Watcher) limitsFor(region string) *limits {
	w.limitsMu.Lock()
	defer w.limitsMu.Unlock()
	l := w.limits[region]
	if l == nil {
		l = &limits{update: newLimiter(w.o.UpdatesPerSecond, 1), describe: newLimiter(w.o.DescribesPerSecond, 1)}
		w.limits[region] = l
	}
	return l
}

func withAttempts(n int) func(*ecs.Options) {
	return func(o *ecs.Options) { o.RetryMaxAttempts = n }
}

// describeServices refreshes every service's task definition and newest
// deployment: ceil(n/10) DescribeServices per cluster and region.
func (w *Watcher) describeServices(ctx context.Context, res *result) {
	groups := map[[2]string][]*service{}
	for _, s := range w.services {
		s.fresh = false
		k := [2]string{s.Region, s.Cluster}
		groups[k] = append(groups[k], s)
	}
	keys := make([][2]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		group := groups[k]
		for start := 0; start < len(group); start += 10 {
			w.describeBatch(ctx, k[0], k[1], group[start:min(start+10, len(group))], res)
		}
	}
}

func (w *Watcher) describeBatch(ctx context.Context, region, cluster string, batch []*service, res *result) {
	if err := w.limitsFor(region).describe.Wait(ctx); err != nil {
		return
	}
	names := make([]string, len(batch))
	for i, s := range batch {
		names[i] = s.Service
	}
	out, err := w.o.ECS(region).DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: names}, withAttempts(describeAttempts))
	gk := region + "/" + cluster
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		code := fetch.ErrorCode(err)
		res.fail(code)
		if w.groupErr[gk] != code {
			w.groupErr[gk] = code
			w.log.Error(fmt.Sprintf("cannot describe services in cluster %s (%s): %s: %s", cluster, region, code, hint("DescribeServices", code, err, batch[0].Target, "")),
				"cluster", cluster, "region", region, "services", names, "code", code)
		}
		return
	}
	if w.groupErr[gk] != "" {
		delete(w.groupErr, gk)
		w.log.Info("services described again", "cluster", cluster, "region", region)
	}
	byName := map[string]ecstypes.Service{}
	for _, s := range out.Services {
		byName[aws.ToString(s.ServiceName)] = s
		byName[aws.ToString(s.ServiceArn)] = s
	}
	reasons := map[string]string{}
	for _, f := range out.Failures {
		arn := aws.ToString(f.Arn)
		reasons[arn[strings.LastIndex(arn, "/")+1:]] = aws.ToString(f.Reason)
	}
	for _, s := range batch {
		s.fresh = true
		got, ok := byName[s.Service]
		state := ""
		switch {
		case !ok:
			state = cmp.Or(reasons[s.Service], "MISSING")
		case aws.ToString(got.Status) != "ACTIVE":
			state = aws.ToString(got.Status)
		}
		if state != s.state {
			if state != "" {
				w.log.Warn("service not found or not active; not watching it until it is", "cluster", s.Cluster, "service", s.Service, "region", s.Region, "reason", state)
			} else if s.state != "" {
				w.log.Info("service active again", "cluster", s.Cluster, "service", s.Service, "region", s.Region)
			}
			s.state = state
		}
		if state != "" {
			continue
		}
		s.arn = aws.ToString(got.ServiceArn)
		s.taskDef = aws.ToString(got.TaskDefinition)
		s.newest = newestDeployment(got.Deployments)
	}
}

func newestDeployment(ds []ecstypes.Deployment) time.Time {
	var t time.Time
	for _, d := range ds {
		if d.CreatedAt != nil && d.CreatedAt.After(t) {
			t = *d.CreatedAt
		}
	}
	return t
}

// readTaskDefinitions reads the secrets of each service that moved to a
// task definition not read yet.
func (w *Watcher) readTaskDefinitions(ctx context.Context, res *result) {
	cache := map[string][]ref{} // services sharing a revision read it once
	for _, s := range w.services {
		if s.state != "" || s.taskDef == "" || s.taskDef == s.readTD {
			continue
		}
		if refs, ok := cache[s.Region+"\x00"+s.taskDef]; ok {
			w.useTaskDef(s, s.taskDef, refs)
			continue
		}
		if err := w.limitsFor(s.Region).describe.Wait(ctx); err != nil {
			return
		}
		out, err := w.o.ECS(s.Region).DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(s.taskDef)}, withAttempts(describeAttempts))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			code := fetch.ErrorCode(err)
			res.fail(code)
			if s.tdErr != code {
				s.tdErr = code
				w.log.Error(fmt.Sprintf("cannot read task definition %s of service %s: %s: %s", s.taskDef, s.Service, code, hint("DescribeTaskDefinition", code, err, s.Target, "")),
					"cluster", s.Cluster, "service", s.Service, "region", s.Region, "task_definition", s.taskDef, "code", code)
			}
			continue
		}
		s.tdErr = ""
		refs := w.secretsOf(s, out.TaskDefinition)
		cache[s.Region+"\x00"+s.taskDef] = refs
		w.useTaskDef(s, s.taskDef, refs)
	}
}

func (w *Watcher) useTaskDef(s *service, arn string, refs []ref) {
	first := s.readTD == ""
	// Pending changes stay: the move to this revision was a deployment,
	// and whether it covers them is for redeploy's newest-deployment
	// check to say.
	s.readTD, s.refs = arn, refs
	values := make([]string, len(refs))
	for i, r := range refs {
		values[i] = r.valueFrom
	}
	msg := "task definition read"
	if !first {
		msg = "service moved to a new task definition; watching its secrets"
	}
	w.log.Info(msg, "cluster", s.Cluster, "service", s.Service, "region", s.Region, "task_definition", arn, "value_from", values)
}

// secretsOf lists every container's secrets[] and
// logConfiguration.secretOptions[]; a valueFrom that does not parse is
// logged once and skipped (ECS would not start such a task either).
func (w *Watcher) secretsOf(s *service, td *ecstypes.TaskDefinition) []ref {
	var refs []ref
	add := func(container string, sec ecstypes.Secret) {
		vf := aws.ToString(sec.ValueFrom)
		p, err := fetch.ParseRef(vf)
		if err != nil {
			bad := aws.ToString(td.TaskDefinitionArn) + "\x00" + vf
			if !w.badRefs[bad] {
				w.badRefs[bad] = true
				w.log.Warn("skipping a secret whose valueFrom cannot be watched: "+err.Error(),
					"cluster", s.Cluster, "service", s.Service, "task_definition", aws.ToString(td.TaskDefinitionArn),
					"container", container, "secret", aws.ToString(sec.Name))
			}
			return
		}
		key := vf
		if p.Region == "" {
			// A bare Parameter Store name resolves in the service's region.
			p.Region = s.Region
			key = vf + "@" + s.Region
		}
		refs = append(refs, ref{key: key, container: container, name: aws.ToString(sec.Name), valueFrom: vf, parsed: p})
	}
	if td == nil {
		return nil
	}
	for _, c := range td.ContainerDefinitions {
		for _, sec := range c.Secrets {
			add(aws.ToString(c.Name), sec)
		}
		if c.LogConfiguration != nil {
			for _, sec := range c.LogConfiguration.SecretOptions {
				add(aws.ToString(c.Name), sec)
			}
		}
	}
	return refs
}

// poll reads the version of every distinct reference and marks each
// service that uses one that moved.
func (w *Watcher) poll(ctx context.Context, res *result) {
	byKey := map[string]fetch.Request{}
	for _, s := range w.services {
		if s.state != "" {
			continue
		}
		for _, r := range s.refs {
			byKey[r.key] = fetch.Request{Name: r.key, Ref: r.parsed}
		}
	}
	reqs := make([]fetch.Request, 0, len(byKey))
	for _, r := range byKey {
		reqs = append(reqs, r)
	}
	slices.SortFunc(reqs, func(a, b fetch.Request) int { return cmp.Compare(a.Name, b.Name) })
	w.forgetGone(byKey)
	if len(reqs) == 0 {
		return
	}
	seenAt := w.o.Now()
	versions, err := w.o.Source.Versions(ctx, reqs)
	if ctx.Err() != nil {
		return
	}
	// previous is the AWS date of each reference's version before this
	// read: a changed version dated before it came back (a stage or label
	// moved to it), and its date says nothing about the change.
	previous := map[string]time.Time{}
	for _, r := range reqs {
		v, ok := versions[r.Name]
		if !ok {
			continue
		}
		if old, known := w.have[r.Name]; known && old.ID != v.ID {
			w.o.Metrics.SecretChanged(r.Name)
			w.log.Info("secret changed", "value_from", r.Ref.Raw, "region", r.Ref.Region, "version", v.ID, "previous_version", old.ID,
				"changed_at", changeDate(v, old.Created, seenAt).UTC().Format(time.RFC3339Nano), "services", w.users(r.Name))
		}
		previous[r.Name] = w.have[r.Name].Created
		w.have[r.Name] = v
	}
	failed := map[string]*fetch.Error{}
	for _, e := range fetch.Errors(err) {
		var fe *fetch.Error
		if errors.As(e, &fe) {
			failed[fe.Name] = fe
			res.fail(fe.Code)
		} else {
			res.fail("")
		}
	}
	w.track(reqs, failed)
	for _, s := range w.services {
		if s.state != "" {
			continue
		}
		for _, r := range s.refs {
			v, ok := versions[r.key]
			if !ok {
				continue // not read this cycle: judged when it is
			}
			old, known := s.known[r.key]
			var at time.Time
			switch {
			case !known && !s.fresh:
				continue // no newest deployment to compare with yet
			case !known:
				// First sight (start, restart, a new revision's secret):
				// a version dated after the newest deployment may be
				// missing from the service's tasks.
				s.known[r.key] = v.ID
				if v.Created.IsZero() || !v.Created.After(s.newest) {
					continue
				}
				at = v.Created
				w.log.Info("secret changed after the service's newest deployment (while not watched)", "cluster", s.Cluster, "service", s.Service,
					"region", s.Region, "value_from", r.valueFrom, "version", v.ID, "changed_at", at.UTC().Format(time.RFC3339Nano),
					"deployment_created_at", s.newest.UTC().Format(time.RFC3339Nano))
			case old != v.ID:
				s.known[r.key] = v.ID
				at = changeDate(v, previous[r.key], seenAt)
			default:
				continue
			}
			if at.After(s.pending[r.key]) {
				s.pending[r.key] = at
			}
		}
	}
}

// changeDate dates a version that changed: AWS's date, unless it has none
// or is older than the version before it (it came back), then when it was
// seen.
func changeDate(v fetch.Version, previous, seen time.Time) time.Time {
	if v.Created.IsZero() || (!previous.IsZero() && v.Created.Before(previous)) {
		return seen
	}
	return v.Created
}

// users names the services that reference key, for logs.
func (w *Watcher) users(key string) []string {
	var out []string
	for _, s := range w.services {
		if s.state == "" && slices.ContainsFunc(s.refs, func(r ref) bool { return r.key == key }) {
			out = append(out, s.Cluster+"/"+s.Service)
		}
	}
	return out
}

// forgetGone drops the state of references no service uses any more.
func (w *Watcher) forgetGone(live map[string]fetch.Request) {
	for key := range w.have {
		if _, ok := live[key]; !ok {
			delete(w.have, key)
		}
	}
	for _, s := range w.services {
		for key := range s.known {
			if !slices.ContainsFunc(s.refs, func(r ref) bool { return r.key == key }) {
				delete(s.known, key)
			}
		}
	}
	for key := range w.staleSince {
		if _, ok := live[key]; !ok {
			delete(w.staleSince, key)
			w.status.Forget(key)
			w.o.Metrics.ForgetSecret(key)
		}
	}
}

// track marks each reference stale or fresh, logging transitions only.
func (w *Watcher) track(reqs []fetch.Request, failed map[string]*fetch.Error) {
	now := w.o.Now()
	for _, r := range reqs {
		e, bad := failed[r.Name]
		since, wasStale := w.staleSince[r.Name]
		switch {
		case bad && !wasStale:
			w.staleSince[r.Name] = now
			w.log.Error("cannot check secret for rotation: "+e.Error(), "value_from", r.Ref.Raw, "region", e.Region,
				"code", e.Code, "class", string(e.Class()), "services", w.users(r.Name))
			fallthrough
		case bad:
			w.status.Stale(r.Name, w.staleSince[r.Name], e.Code)
			w.o.Metrics.SecretStale(r.Name)
		case wasStale:
			delete(w.staleSince, r.Name)
			w.log.Info("secret checked again", "value_from", r.Ref.Raw, "stale_for", now.Sub(since).Round(time.Second).String())
			fallthrough
		default:
			w.status.Fresh(r.Name)
			w.o.Metrics.SecretOK(r.Name, now)
		}
	}
}

// redeploy forces one new deployment of each service with a pending
// change, unless a deployment newer than the change exists.
func (w *Watcher) redeploy(ctx context.Context, res *result) {
	var due []*service
	for _, s := range w.services {
		if len(s.pending) == 0 {
			continue
		}
		if s.state != "" {
			clear(s.pending)
			continue
		}
		if !s.fresh {
			// DescribeServices failed this cycle: without its newest
			// deployment, wait for a cycle that can check.
			continue
		}
		var latest time.Time
		for _, at := range s.pending {
			if at.After(latest) {
				latest = at
			}
		}
		names, values := s.changed()
		if s.newest.After(latest) {
			w.log.Info("service already deployed since the change; not redeploying", "cluster", s.Cluster, "service", s.Service,
				"region", s.Region, "secrets", names, "value_from", values,
				"deployment_created_at", s.newest.UTC().Format(time.RFC3339Nano), "changed_at", latest.UTC().Format(time.RFC3339Nano))
			clear(s.pending)
			continue
		}
		if w.o.DryRun {
			w.log.Info("would redeploy (dry run)", "cluster", s.Cluster, "service", s.Service, "region", s.Region, "secrets", names, "value_from", values)
			clear(s.pending)
			continue
		}
		due = append(due, s)
	}
	if len(due) == 0 {
		return
	}
	jobs := make(chan *service)
	var wg sync.WaitGroup
	for range min(updateWorkers, len(due)) {
		wg.Go(func() {
			for s := range jobs {
				w.update(ctx, s, res)
			}
		})
	}
	for _, s := range due {
		jobs <- s
	}
	close(jobs)
	wg.Wait()
}

// changed names the pending secrets: their names in the task definition
// and their valueFroms, sorted.
func (s *service) changed() (names, values []string) {
	for _, r := range s.refs {
		if _, ok := s.pending[r.key]; ok {
			names = append(names, r.name)
			values = append(values, r.valueFrom)
		}
	}
	sort.Strings(names)
	sort.Strings(values)
	return slices.Compact(names), slices.Compact(values)
}

// update makes sure s has a deployment newer than its pending changes,
// through the lock every actor on s shares. It touches only s, so updates
// of different services run concurrently.
func (w *Watcher) update(ctx context.Context, s *service, res *result) {
	l := w.limitsFor(s.Region)
	if l.describe.Wait(ctx) != nil {
		return
	}
	names, values := s.changed()
	var latest time.Time
	for _, at := range s.pending {
		if at.After(latest) {
			latest = at
		}
	}
	if s.locked == nil {
		r, err := redeploy.New(redeploy.Options{
			SSM: w.o.SSM(s.Region), ECS: w.o.ECS(s.Region), Cluster: s.Cluster, Service: s.Service, Owner: w.o.Owner,
			TakeoverAfter: w.o.TakeoverAfter, MaxWait: w.o.MaxWait, DryRun: w.o.DryRun, Rand: w.o.Rand, Now: w.o.Now, Log: w.log,
			BeforeUpdate: l.update.Wait,
		})
		if err != nil { // checked by Validate
			w.log.Error("cannot redeploy: "+err.Error(), "cluster", s.Cluster, "service", s.Service)
			return
		}
		s.locked = r
	}
	outcome, err := s.locked.Ensure(ctx, latest)
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, redeploy.ErrBusy):
		// Another actor (an in-task agent, another watcher) is at it; the
		// next cycle finds its deployment in the lock record.
		w.log.Info("another actor is redeploying the service; checking next cycle", "cluster", s.Cluster, "service", s.Service,
			"region", s.Region, "secrets", names, "value_from", values, "error", err.Error())
		return
	case err != nil:
		code := fetch.ErrorCode(err)
		op := "UpdateService"
		var oe *smithy.OperationError
		if errors.As(err, &oe) {
			op = oe.Operation()
		}
		res.fail(code)
		s.failures++
		w.o.Metrics.Action("redeploy", "failure")
		w.log.Error(fmt.Sprintf("cannot redeploy service %s: %s: %s: %s; retrying next cycle", s.Service, op, code, hint(op, code, err, s.Target, s.arn)),
			"cluster", s.Cluster, "service", s.Service, "region", s.Region, "secrets", names, "value_from", values,
			"code", code, "attempt", s.failures)
		return
	}
	s.failures = 0
	clear(s.pending)
	w.o.Metrics.Action("redeploy", "success")
	switch outcome {
	case redeploy.Deployed, redeploy.TookOver:
		w.log.Info("redeployed service for rotated secrets", "cluster", s.Cluster, "service", s.Service, "region", s.Region,
			"secrets", names, "value_from", values, "outcome", string(outcome))
	default:
		w.log.Info("service already redeployed since the change (by another actor or a deploy); not redeploying", "cluster", s.Cluster,
			"service", s.Service, "region", s.Region, "secrets", names, "value_from", values, "outcome", string(outcome))
	}
}

// hint says what to do about an ECS error, for the one line a user reads.
func hint(op, code string, err error, t Target, serviceARN string) string {
	resource := serviceARN
	if resource == "" {
		resource = "arn:aws:ecs:" + t.Region + ":ACCOUNT:service/" + t.Cluster + "/" + t.Service
	}
	switch code {
	case "AccessDeniedException":
		switch op {
		case "GetParametersByPath", "GetParameter", "PutParameter", "DeleteParameter":
			return fmt.Sprintf("access denied: the watcher's task role needs ssm:%s on the redeploy lock records (arn:aws:ssm:%s:ACCOUNT:parameter%s and %s/*); agent policy prints them",
				op, t.Region, redeploy.LockPath(t.Cluster, t.Service), redeploy.LockPath(t.Cluster, t.Service))
		}
		if op == "DescribeTaskDefinition" {
			return "access denied: the watcher's task role needs ecs:DescribeTaskDefinition (on resource \"*\": it has no resource-level permissions)"
		}
		return fmt.Sprintf("access denied: the watcher's task role needs ecs:%s on %s", op, resource)
	case "ServiceNotFoundException":
		return fmt.Sprintf("no service %s in cluster %s in %s; check --service, --cluster and the region", t.Service, t.Cluster, t.Region)
	case "ServiceNotActiveException":
		return "the service is not ACTIVE (deleted or draining)"
	case "ClusterNotFoundException":
		return fmt.Sprintf("no cluster %s in %s; check --cluster and the region", t.Cluster, t.Region)
	case "ThrottlingException", "TooManyRequestsException":
		return "throttled by ECS, whose quota every deploy pipeline in the account and region shares; the watcher slows down and retries"
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException":
		return "AWS rejected the credentials: check the watcher's task role (taskRoleArn) and the container's clock"
	case "NoCredentials":
		return "no credentials: give the watcher's task a task role (taskRoleArn); outside ECS set the usual AWS credential variables"
	case "RequestError":
		return fmt.Sprintf("could not reach the ECS endpoint in %s: check the network path (NAT gateway or VPC endpoint)", t.Region)
	case "Timeout":
		return "the call was cancelled or timed out"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != "" {
		return ae.ErrorMessage()
	}
	return "unexpected error"
}
