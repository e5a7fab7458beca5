package redeploy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// The fakes keep state in memory, are safe for concurrent use, wait on
// timers only (so a synctest bubble makes their latency free), honour the
// context like the SDK does, and fail the test on calls the real services
// would reject or the test did not expect.

// calls counts API calls by operation and remembers when each was made.
type calls struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (c *calls) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at = map[string][]time.Time{}
	}
	c.at[op] = append(c.at[op], time.Now())
}

func (c *calls) n(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at[op])
}

func (c *calls) times(op string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at[op]...)
}

// peak is the most calls of op in any window of length w.
func (c *calls) peak(op string, w time.Duration) int {
	ts := c.times(op)
	best, j := 0, 0
	for i := range ts { // appended in time order
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func wait(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type param struct {
	value    string
	modified time.Time
}

type fakeSSM struct {
	t       testing.TB
	latency time.Duration
	calls   calls

	// onCreate, if set, runs after a PutParameter created a parameter,
	// before the caller gets the answer.
	onCreate func(name, value string)
	// echoCreate makes a create that succeeded answer ParameterAlreadyExists,
	// as the SDK's retry of a create whose first answer was lost does.
	echoCreate bool
	noDelete   bool // fail the test on DeleteParameter
	// crashed, if set, fails every put whose value it matches: a crashed
	// actor writes nothing more.
	crashed func(value string) bool

	mu     sync.Mutex
	params map[string]param
}

func newFakeSSM(t testing.TB, latency time.Duration) *fakeSSM {
	return &fakeSSM{t: t, latency: latency, params: map[string]param{}}
}

func (f *fakeSSM) checkName(op, name string) {
	f.t.Helper()
	ok := strings.HasPrefix(name, LockPrefix) && len(name) <= 1011-len("arn:aws:ssm:eu-west-1:111122223333:parameter") &&
		strings.Count(name, "/") <= 15
	for _, c := range name {
		ok = ok && ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("_.-/", c))
	}
	if !ok {
		f.t.Errorf("%s: bad lock name %q", op, name)
	}
}

func (f *fakeSSM) PutParameter(ctx context.Context, in *ssm.PutParameterInput, _ ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	f.calls.add("PutParameter")
	name, value := aws.ToString(in.Name), aws.ToString(in.Value)
	f.checkName("PutParameter", name)
	if in.Type != ssmtypes.ParameterTypeString || in.Overwrite == nil || len(value) == 0 || len(value) > 4096 {
		f.t.Errorf("PutParameter %s: type %q, overwrite %v, %d bytes: want an explicit String put of 1..4096 bytes", name, in.Type, in.Overwrite, len(value))
	}
	if err := wait(ctx, f.latency); err != nil {
		return nil, err
	}
	if f.crashed != nil && f.crashed(value) {
		return nil, fmt.Errorf("fake: the actor crashed")
	}
	f.mu.Lock()
	_, exists := f.params[name]
	if exists && !*in.Overwrite {
		f.mu.Unlock()
		return nil, &ssmtypes.ParameterAlreadyExists{Message: aws.String("The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")}
	}
	f.params[name] = param{value: value, modified: time.Now()}
	f.mu.Unlock()
	if !exists {
		if f.onCreate != nil {
			f.onCreate(name, value)
		}
		if f.echoCreate {
			return nil, &ssmtypes.ParameterAlreadyExists{Message: aws.String("The parameter already exists.")}
		}
	}
	return &ssm.PutParameterOutput{Version: 1, Tier: ssmtypes.ParameterTierStandard}, nil
}

// GetParametersByPath answers in pages of 3, so callers must follow
// NextToken as AWS's best-effort pages require.
func (f *fakeSSM) GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, _ ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	f.calls.add("GetParametersByPath")
	path := aws.ToString(in.Path)
	f.checkName("GetParametersByPath", path)
	if aws.ToBool(in.WithDecryption) || aws.ToBool(in.Recursive) {
		f.t.Errorf("GetParametersByPath %s: decryption %v, recursive %v: want neither", path, aws.ToBool(in.WithDecryption), aws.ToBool(in.Recursive))
	}
	if err := wait(ctx, f.latency); err != nil {
		return nil, err
	}
	f.mu.Lock()
	var names []string
	for n := range f.params {
		if rest, ok := strings.CutPrefix(n, path+"/"); ok && !strings.Contains(rest, "/") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	start := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		start, _ = strconv.Atoi(tok)
	}
	out := &ssm.GetParametersByPathOutput{}
	for i := start; i < len(names) && i < start+3; i++ {
		p := f.params[names[i]]
		out.Parameters = append(out.Parameters, ssmtypes.Parameter{Name: aws.String(names[i]), Value: aws.String(p.value),
			Type: ssmtypes.ParameterTypeString, LastModifiedDate: aws.Time(p.modified), Version: 1})
	}
	if start+3 < len(names) {
		out.NextToken = aws.String(strconv.Itoa(start + 3))
	}
	f.mu.Unlock()
	return out, nil
}

// names lists the parameters in the fake.
func (f *fakeSSM) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.params {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *fakeSSM) GetParameter(ctx context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.calls.add("GetParameter")
	name := aws.ToString(in.Name)
	f.checkName("GetParameter", name)
	if aws.ToBool(in.WithDecryption) {
		f.t.Errorf("GetParameter %s with decryption: a lock is a String, no KMS call wanted", name)
	}
	if err := wait(ctx, f.latency); err != nil {
		return nil, err
	}
	f.mu.Lock()
	p, ok := f.params[name]
	f.mu.Unlock()
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{
		Name: aws.String(name), Value: aws.String(p.value), Type: ssmtypes.ParameterTypeString,
		LastModifiedDate: aws.Time(p.modified), Version: 1,
	}}, nil
}

func (f *fakeSSM) DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, _ ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error) {
	f.calls.add("DeleteParameter")
	name := aws.ToString(in.Name)
	f.checkName("DeleteParameter", name)
	if f.noDelete {
		f.t.Errorf("unexpected DeleteParameter %s", name)
	}
	if err := wait(ctx, f.latency); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.params[name]; !ok {
		return nil, &ssmtypes.ParameterNotFound{}
	}
	delete(f.params, name)
	return &ssm.DeleteParameterOutput{}, nil
}

func (f *fakeSSM) set(name string, v lockValue, modified time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.params[name] = param{value: encode(v), modified: modified}
}

func (f *fakeSSM) get(name string) (lockValue, bool) {
	f.mu.Lock()
	p, ok := f.params[name]
	f.mu.Unlock()
	var v lockValue
	if ok {
		if err := json.Unmarshal([]byte(p.value), &v); err != nil {
			f.t.Errorf("lock %s: value %q: %v", name, p.value, err)
		}
	}
	return v, ok
}

type fakeECS struct {
	t                testing.TB
	cluster, service string
	describeLatency  time.Duration
	updateLatency    time.Duration // the slow control plane: the deployment appears at the end
	calls            calls

	noUpdate bool // fail the test on UpdateService
	// slowFirstDescribe, if set, is the latency of the first DescribeServices.
	slowFirstDescribe time.Duration
	// failUpdates answers this many UpdateService calls with an error.
	failUpdates int
	// updateErr, if set, answers every UpdateService (none deploys).
	updateErr error
	// onUpdate, if set, runs when a deployment was created, before the
	// caller gets the answer.
	onUpdate func()

	mu          sync.Mutex
	deployments []ecstypes.Deployment
	n           int
}

func newFakeECS(t testing.TB, primaryCreated time.Time) *fakeECS {
	f := &fakeECS{t: t, cluster: "arn:aws:ecs:eu-west-1:111122223333:cluster/prod", service: "web"}
	f.deployments = []ecstypes.Deployment{{Id: aws.String("ecs-svc/0"), Status: aws.String("PRIMARY"), CreatedAt: aws.Time(primaryCreated)}}
	return f
}

func (f *fakeECS) DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, _ ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error) {
	f.calls.add("DescribeServices")
	if shortName(aws.ToString(in.Cluster)) != shortName(f.cluster) || len(in.Services) != 1 || in.Services[0] != f.service {
		f.t.Errorf("DescribeServices(cluster %q, services %q): want cluster %q, services [%q]", aws.ToString(in.Cluster), in.Services, f.cluster, f.service)
	}
	latency := f.describeLatency
	if f.calls.n("DescribeServices") == 1 && f.slowFirstDescribe > 0 {
		latency = f.slowFirstDescribe
	}
	if err := wait(ctx, latency); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &ecs.DescribeServicesOutput{Services: []ecstypes.Service{{
		ServiceName: aws.String(f.service), Deployments: append([]ecstypes.Deployment(nil), f.deployments...),
	}}}, nil
}

func (f *fakeECS) UpdateService(ctx context.Context, in *ecs.UpdateServiceInput, _ ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error) {
	f.calls.add("UpdateService")
	if shortName(aws.ToString(in.Cluster)) != shortName(f.cluster) || aws.ToString(in.Service) != f.service || !in.ForceNewDeployment ||
		in.TaskDefinition != nil || in.DesiredCount != nil {
		f.t.Errorf("UpdateService(cluster %q, service %q, force %v, task definition %v, desired count %v): want only a forced new deployment of %q in %q",
			aws.ToString(in.Cluster), aws.ToString(in.Service), in.ForceNewDeployment, in.TaskDefinition, in.DesiredCount, f.service, f.cluster)
	}
	if f.noUpdate {
		f.t.Errorf("unexpected UpdateService")
	}
	if err := wait(ctx, f.updateLatency); err != nil {
		return nil, err
	}
	f.mu.Lock()
	if f.updateErr != nil {
		f.mu.Unlock()
		return nil, f.updateErr
	}
	if f.failUpdates > 0 {
		f.failUpdates--
		f.mu.Unlock()
		return nil, fmt.Errorf("fake: ServerException: service unavailable")
	}
	for i := range f.deployments {
		f.deployments[i].Status = aws.String("ACTIVE")
	}
	f.n++
	d := ecstypes.Deployment{Id: aws.String(fmt.Sprintf("ecs-svc/%d", f.n)), Status: aws.String("PRIMARY"), CreatedAt: aws.Time(time.Now())}
	f.deployments = append(f.deployments, d)
	out := &ecs.UpdateServiceOutput{Service: &ecstypes.Service{
		ServiceName: aws.String(f.service), Deployments: append([]ecstypes.Deployment(nil), f.deployments...),
	}}
	f.mu.Unlock()
	if f.onUpdate != nil {
		f.onUpdate()
	}
	return out, nil
}

// deployed returns the deployments UpdateService created.
func (f *fakeECS) deployed() []ecstypes.Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ecstypes.Deployment(nil), f.deployments[1:]...)
}
