// Package fetch turns valueFrom references into values and versions: parsing
// (ref.go), batched and concurrent AWS calls, and errors a user can act on.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// SSMClient is the part of *ssm.Client we use.
type SSMClient interface {
	GetParameters(ctx context.Context, params *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
}

// SecretsManagerClient is the part of *secretsmanager.Client we use.
type SecretsManagerClient interface {
	GetSecretValue(ctx context.Context, params *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Clients gives a client per region; ARNs may name any region.
type Clients struct {
	SSM            func(region string) SSMClient
	SecretsManager func(region string) SecretsManagerClient
}

// MaxNamesPerCall is GetParameters' limit.
const MaxNamesPerCall = 10

// DefaultConcurrency bounds the calls in flight. Secrets Manager allows 10,000
// GetSecretValue a second, so this is about sockets, not quota.
const DefaultConcurrency = 32

// Fetcher resolves references.
type Fetcher struct {
	Clients     Clients
	Region      string // the task's region, for bare Parameter Store names
	Concurrency int    // calls in flight; 0 means DefaultConcurrency
}

// Request asks for one configured secret.
type Request struct {
	Name     string // the secret's configured name, for errors
	Ref      Ref
	Optional bool // a missing secret or key is skipped, not an error
}

// Result is one resolved secret.
type Result struct {
	Value   secret.Value
	Binary  bool   // SecretBinary: raw bytes, base64 where text is needed
	Version string // Parameter Store version number or Secrets Manager version id
}

// Outcome is what Fetch resolved and what it skipped.
type Outcome struct {
	Values  map[string]Result // by Request.Name
	Skipped []*Error          // optional secrets that were missing
}

// Fetch resolves every request with ceil(P/10) GetParameters calls per region
// and one GetSecretValue call per distinct secret and version, concurrently.
// The returned error joins one *Error per failed request; on error the
// Outcome still holds what did resolve.
func (f *Fetcher) Fetch(ctx context.Context, reqs []Request) (Outcome, error) {
	c := f.newCall(reqs)
	c.run(ctx)
	return c.collect()
}

type paramKey struct{ region, query string }

type secretKey struct{ region, id, stage, version string }

type paramResult struct {
	p   *ssmtypes.Parameter
	err error // nil with p == nil means AWS listed it as invalid
}

type secretResult struct {
	out *secretsmanager.GetSecretValueOutput
	err error
}

// call is one Fetch: the deduplicated work and its results.
type call struct {
	f       *Fetcher
	reqs    []Request
	params  map[string][]string // region → distinct queries, in request order
	secrets []secretKey
	mu      sync.Mutex
	pres    map[paramKey]paramResult
	sres    map[secretKey]secretResult
}

func (f *Fetcher) newCall(reqs []Request) *call {
	c := &call{f: f, reqs: reqs, params: map[string][]string{},
		pres: map[paramKey]paramResult{}, sres: map[secretKey]secretResult{}}
	seenP := map[paramKey]bool{}
	seenS := map[secretKey]bool{}
	for _, r := range reqs {
		switch r.Ref.Service {
		case ParameterStore:
			k := f.paramKey(r.Ref)
			if !seenP[k] {
				seenP[k] = true
				c.params[k.region] = append(c.params[k.region], k.query)
			}
		case SecretsManager:
			k := secretKeyOf(r.Ref)
			if !seenS[k] {
				seenS[k] = true
				c.secrets = append(c.secrets, k)
			}
		}
	}
	return c
}

func (f *Fetcher) paramKey(r Ref) paramKey {
	region := r.Region
	if region == "" {
		region = f.Region
	}
	return paramKey{region: region, query: r.ParameterQuery()}
}

func secretKeyOf(r Ref) secretKey {
	return secretKey{region: r.Region, id: r.SecretID, stage: r.VersionStage, version: r.VersionID}
}

func (c *call) run(ctx context.Context) {
	limit := c.f.Concurrency
	if limit <= 0 {
		limit = DefaultConcurrency
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	do := func(job func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A cancelled ctx still runs the job: the SDK fails it at
			// once, and the error lands on the secrets it was for.
			sem <- struct{}{}
			defer func() { <-sem }()
			job()
		}()
	}
	for region, queries := range c.params {
		for start := 0; start < len(queries); start += MaxNamesPerCall {
			batch := queries[start:min(start+MaxNamesPerCall, len(queries))]
			do(func() { c.getParameters(ctx, region, batch) })
		}
	}
	for _, k := range c.secrets {
		do(func() { c.getSecretValue(ctx, k) })
	}
	wg.Wait()
}

func (c *call) getParameters(ctx context.Context, region string, queries []string) {
	res := getParameters(ctx, c.f.Clients.SSM(region), queries)
	// GetParameters is denied as a whole when any one name is: ask for each
	// name alone so the error lands on the secret that lacks permission.
	if len(queries) > 1 && res[queries[0]].err != nil && errorCode(res[queries[0]].err) == "AccessDeniedException" {
		for _, q := range queries {
			c.getParameters(ctx, region, []string{q})
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, r := range res {
		c.pres[paramKey{region, q}] = r
	}
}

func getParameters(ctx context.Context, client SSMClient, queries []string) map[string]paramResult {
	res := make(map[string]paramResult, len(queries))
	out, err := client.GetParameters(ctx, &ssm.GetParametersInput{Names: queries, WithDecryption: aws.Bool(true)})
	if err != nil {
		for _, q := range queries {
			res[q] = paramResult{err: err}
		}
		return res
	}
	found := make(map[string]*ssmtypes.Parameter, len(out.Parameters)*2)
	for i := range out.Parameters {
		p := &out.Parameters[i]
		sel := aws.ToString(p.Selector)
		// AWS echoes a selector in Selector (":3") and returns the plain name
		// (or the ARN for a shared parameter), so rebuild each way it may
		// have been asked for.
		for _, base := range []string{aws.ToString(p.Name), aws.ToString(p.ARN)} {
			if base != "" {
				found[base+sel] = p
			}
		}
	}
	for _, q := range queries {
		res[q] = paramResult{p: found[q]}
	}
	return res
}

func (c *call) getSecretValue(ctx context.Context, k secretKey) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(k.id)}
	if k.stage != "" {
		in.VersionStage = aws.String(k.stage)
	}
	if k.version != "" {
		in.VersionId = aws.String(k.version)
	}
	out, err := c.f.Clients.SecretsManager(k.region).GetSecretValue(ctx, in)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sres[k] = secretResult{out: out, err: err}
}

func (c *call) collect() (Outcome, error) {
	o := Outcome{Values: make(map[string]Result, len(c.reqs))}
	var errs []error
	for _, r := range c.reqs {
		res, err := c.result(r)
		if err == nil {
			o.Values[r.Name] = res
			continue
		}
		var e *Error
		if errors.As(err, &e) && r.Optional && e.Missing() {
			o.Skipped = append(o.Skipped, e)
			continue
		}
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

func (c *call) result(r Request) (Result, error) {
	switch r.Ref.Service {
	case ParameterStore:
		k := c.f.paramKey(r.Ref)
		pr, ok := c.pres[k]
		switch {
		case !ok:
			return Result{}, newError(r, k.region, context.Canceled)
		case pr.err != nil:
			return Result{}, newError(r, k.region, pr.err)
		case pr.p == nil:
			return Result{}, newError(r, k.region, errParameterNotFound)
		}
		return Result{Value: secret.FromString(aws.ToString(pr.p.Value)), Version: fmt.Sprint(pr.p.Version)}, nil
	case SecretsManager:
		k := secretKeyOf(r.Ref)
		sr, ok := c.sres[k]
		switch {
		case !ok:
			return Result{}, newError(r, k.region, context.Canceled)
		case sr.err != nil:
			return Result{}, newError(r, k.region, sr.err)
		}
		res := Result{Version: aws.ToString(sr.out.VersionId)}
		if sr.out.SecretString != nil {
			res.Value = secret.FromString(*sr.out.SecretString)
		} else {
			res.Value, res.Binary = secret.New(sr.out.SecretBinary), true
		}
		if r.Ref.JSONKey == "" {
			return res, nil
		}
		if res.Binary {
			return Result{}, newError(r, k.region, secret.ErrNotJSONObject)
		}
		v, err := res.Value.Field(r.Ref.JSONKey)
		if err != nil {
			return Result{}, newError(r, k.region, err)
		}
		res.Value = v
		return res, nil
	}
	return Result{}, fmt.Errorf("secret %q: unknown service %d", r.Name, r.Ref.Service)
}
