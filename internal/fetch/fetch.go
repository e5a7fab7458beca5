// Package fetch turns valueFrom references into values and versions: parsing
// (ref.go), batched and concurrent AWS calls, and errors a user can act on.
package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
	DescribeSecret(ctx context.Context, params *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
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
	Attempts    int    // attempts per call; 0 means the aws.Config's retryer
	// CallTimeout bounds each attempt of each AWS call, credentials
	// included; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
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
	Version string // Parameter Store version number, or Secrets Manager version id (also for /aws/reference/secretsmanager/ names)
	// Modified is AWS's date of that version: Parameter Store's
	// LastModifiedDate, Secrets Manager's CreatedDate. Zero when AWS gave
	// none. It dates a change for the redeploy action (action.Change.At).
	Modified time.Time
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
	c := f.newCall(reqs, true)
	c.run(ctx)
	return c.collect()
}

// Poll asks AWS which of reqs changed since have (the results of the last
// Fetch, by Request.Name) without decrypting anything, and returns the names
// whose value must be fetched again, in request order. Errors are joined
// *Error values, one per request that could not be checked (so the caller can
// mark exactly those stale); names that could be checked are still returned.
//
// Parameter Store names cost ceil(P/10) GetParameters calls per region
// without decryption; Secrets Manager ARNs and /aws/reference/secretsmanager/
// names one DescribeSecret per distinct secret and region, whatever stages
// and keys the requests use. Pinned versions ("name:3", a version id) are
// never polled and never change. A request absent from have is always
// changed, without a call. An optional request that is now missing is
// changed too, so that Fetch decides, as it did the first time.
func (f *Fetcher) Poll(ctx context.Context, reqs []Request, have map[string]Result) (changed []string, err error) {
	var check []Request
	for _, r := range reqs {
		if _, ok := have[r.Name]; ok && !pinned(r.Ref) {
			check = append(check, r)
		}
	}
	c := f.newCall(check, false)
	c.run(ctx)
	var errs []error
	for _, r := range reqs {
		prev, ok := have[r.Name]
		switch {
		case !ok:
			changed = append(changed, r.Name)
			continue
		case pinned(r.Ref):
			continue
		}
		v, err := c.version(r)
		var e *Error
		switch {
		case err != nil && !(r.Optional && errors.As(err, &e) && e.Missing()):
			errs = append(errs, err)
		case err != nil || v != prev.Version:
			// Moved, or optional and now missing: Fetch decides.
			changed = append(changed, r.Name)
		}
	}
	return changed, errors.Join(errs...)
}

// pinned reports whether r names one fixed version, which cannot change.
func pinned(r Ref) bool {
	switch r.Service {
	case ParameterStore:
		return r.Selector != "" && strings.Trim(r.Selector, "0123456789") == ""
	case SecretsManager:
		return r.VersionID != ""
	}
	return false
}

// stageCurrent is the staging label Secrets Manager reads by default.
const stageCurrent = "AWSCURRENT"

type paramKey struct{ region, query string }

type secretKey struct{ region, id, stage, version string }

// describeKey is one DescribeSecret call: a secret id in a region.
type describeKey struct{ region, id string }

type paramResult struct {
	p   *ssmtypes.Parameter
	err error // nil with p == nil means AWS listed it as invalid
}

type secretResult struct {
	out *secretsmanager.GetSecretValueOutput
	err error
}

type describeResult struct {
	out *secretsmanager.DescribeSecretOutput
	err error
}

// call is one Fetch or Poll: the deduplicated work and its results.
type call struct {
	f         *Fetcher
	reqs      []Request
	decrypt   bool                // Fetch; Poll reads versions only
	params    map[string][]string // region → distinct queries, in request order
	secrets   []secretKey         // GetSecretValue calls (Fetch)
	described []describeKey       // DescribeSecret calls (Poll)
	mu        sync.Mutex
	pres      map[paramKey]paramResult
	sres      map[secretKey]secretResult
	dres      map[describeKey]describeResult
}

// newCall plans the calls for reqs: values with decryption for Fetch, or
// versions only for Poll, where Secrets Manager is asked with
// DescribeSecret (a /aws/reference/secretsmanager/ name cannot be read
// from Parameter Store without decryption).
func (f *Fetcher) newCall(reqs []Request, decrypt bool) *call {
	c := &call{f: f, reqs: reqs, decrypt: decrypt, params: map[string][]string{},
		pres: map[paramKey]paramResult{}, sres: map[secretKey]secretResult{}, dres: map[describeKey]describeResult{}}
	seen := map[any]bool{}
	for _, r := range reqs {
		switch {
		case r.Ref.Service == ParameterStore && (decrypt || !r.Ref.ViaSecretsManager):
			k := f.paramKey(r.Ref)
			if !seen[k] {
				seen[k] = true
				c.params[k.region] = append(c.params[k.region], k.query)
			}
		case r.Ref.Service == SecretsManager && decrypt:
			k := secretKeyOf(r.Ref)
			if !seen[k] {
				seen[k] = true
				c.secrets = append(c.secrets, k)
			}
		case !decrypt:
			k, _ := f.describeTarget(r.Ref)
			if !seen[k] {
				seen[k] = true
				c.described = append(c.described, k)
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
	k := secretKey{region: r.Region, id: r.SecretID, stage: r.VersionStage, version: r.VersionID}
	if k.stage == "" && k.version == "" {
		// What Secrets Manager reads when neither is given: one call
		// serves "app", "app:key::" and "app:key:AWSCURRENT:".
		k.stage = "AWSCURRENT"
	}
	return k
}

// describeTarget is the secret Poll describes for r, a Secrets Manager ARN
// or a /aws/reference/secretsmanager/ name, and the stage whose version it
// compares.
func (f *Fetcher) describeTarget(r Ref) (k describeKey, stage string) {
	if r.Service == ParameterStore {
		k = describeKey{region: f.paramKey(r).region, id: strings.TrimPrefix(r.Parameter, smReferencePrefix)}
		if r.IsARN {
			// A partial ARN, so that a parameter ARN naming another
			// account finds the secret there.
			k.id = "arn:" + r.Partition + ":secretsmanager:" + k.region + ":" + r.Account + ":secret:" + k.id
		}
		return k, stageCurrent
	}
	stage = r.VersionStage
	if stage == "" {
		stage = stageCurrent
	}
	return describeKey{region: r.Region, id: r.SecretID}, stage
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
	for _, k := range c.described {
		do(func() { c.describeSecret(ctx, k) })
	}
	wg.Wait()
}

func (c *call) getParameters(ctx context.Context, region string, queries []string) {
	res := getParameters(ctx, c.f.Clients.SSM(region), queries, c.f.ssmAttempts, c.decrypt)
	// GetParameters is denied as a whole when any one name is: ask for each
	// name alone so the error lands on the secret that lacks permission.
	if len(queries) > 1 && res[queries[0]].err != nil && ErrorCode(res[queries[0]].err) == "AccessDeniedException" {
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

func getParameters(ctx context.Context, client SSMClient, queries []string, attempts func(*ssm.Options), decrypt bool) map[string]paramResult {
	res := make(map[string]paramResult, len(queries))
	out, err := client.GetParameters(ctx, &ssm.GetParametersInput{Names: queries, WithDecryption: aws.Bool(decrypt)}, attempts)
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
	out, err := c.f.Clients.SecretsManager(k.region).GetSecretValue(ctx, in, c.f.smAttempts)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sres[k] = secretResult{out: out, err: err}
}

func (c *call) describeSecret(ctx context.Context, k describeKey) {
	out, err := c.f.Clients.SecretsManager(k.region).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(k.id)}, c.f.smAttempts)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dres[k] = describeResult{out: out, err: err}
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

// parameter is what GetParameters returned for r, or the *Error for r.
func (c *call) parameter(r Request) (*ssmtypes.Parameter, error) {
	k := c.f.paramKey(r.Ref)
	pr, ok := c.pres[k]
	switch {
	case !ok:
		return nil, newError(r, k.region, "GetParameters", context.DeadlineExceeded)
	case pr.err != nil:
		return nil, newError(r, k.region, "GetParameters", pr.err)
	case pr.p == nil:
		return nil, newError(r, k.region, "GetParameters", errParameterNotFound)
	}
	return pr.p, nil
}

func (c *call) result(r Request) (Result, error) {
	switch r.Ref.Service {
	case ParameterStore:
		p, err := c.parameter(r)
		if err != nil {
			return Result{}, err
		}
		res := Result{Value: secret.FromString(aws.ToString(p.Value)), Version: strconv.FormatInt(p.Version, 10), Modified: aws.ToTime(p.LastModifiedDate)}
		if r.Ref.ViaSecretsManager {
			// Version is always 0 here; Poll compares the secret's version id.
			res.Version = sourceVersionID(aws.ToString(p.SourceResult))
		}
		return res, nil
	case SecretsManager:
		k := secretKeyOf(r.Ref)
		sr, ok := c.sres[k]
		switch {
		case !ok:
			return Result{}, newError(r, k.region, "GetSecretValue", context.DeadlineExceeded)
		case sr.err != nil:
			return Result{}, newError(r, k.region, "GetSecretValue", sr.err)
		}
		res := Result{Version: aws.ToString(sr.out.VersionId), Modified: aws.ToTime(sr.out.CreatedDate)}
		if sr.out.SecretString != nil {
			res.Value = secret.FromString(*sr.out.SecretString)
		} else {
			res.Value, res.Binary = secret.New(sr.out.SecretBinary), true
		}
		if r.Ref.JSONKey == "" {
			return res, nil
		}
		if res.Binary {
			return Result{}, newError(r, k.region, "GetSecretValue", secret.ErrNotJSONObject)
		}
		v, err := res.Value.Field(r.Ref.JSONKey)
		if err != nil {
			return Result{}, newError(r, k.region, "GetSecretValue", err)
		}
		res.Value = v
		return res, nil
	}
	return Result{}, fmt.Errorf("secret %q: unknown service %d", r.Name, r.Ref.Service)
}

// version is the version r resolves to now, from a Poll call, in the form
// Fetch stores in Result.Version.
func (c *call) version(r Request) (string, error) {
	if r.Ref.Service == ParameterStore && !r.Ref.ViaSecretsManager {
		p, err := c.parameter(r)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(p.Version, 10), nil
	}
	k, stage := c.f.describeTarget(r.Ref)
	dr, ok := c.dres[k]
	switch {
	case !ok:
		return "", newError(r, k.region, "DescribeSecret", context.DeadlineExceeded)
	case dr.err != nil:
		return "", newError(r, k.region, "DescribeSecret", dr.err)
	}
	for id, stages := range dr.out.VersionIdsToStages {
		if slices.Contains(stages, stage) {
			return id, nil
		}
	}
	return "", newError(r, k.region, "DescribeSecret", errStageNotFound)
}

// sourceVersionID is the Secrets Manager version id in the SourceResult of
// a /aws/reference/secretsmanager/ parameter: the secret's GetSecretValue
// response as a JSON string. AWS has been seen to send camelCase keys
// ("versionId", "secretString", "createdDate" as text) where its
// documentation shows "VersionId"; encoding/json matches either. The JSON
// holds the secret value too, so only the id is decoded. "" (which Poll
// always reports as changed) if there is none.
func sourceVersionID(src string) string {
	var v struct{ VersionId string }
	if json.Unmarshal([]byte(src), &v) != nil {
		return ""
	}
	return v.VersionId
}

func (f *Fetcher) ssmAttempts(o *ssm.Options) {
	o.APIOptions = append(o.APIOptions, f.attemptTimeout().add)
	if f.Attempts > 0 {
		o.RetryMaxAttempts = f.Attempts
	}
}

func (f *Fetcher) smAttempts(o *secretsmanager.Options) {
	o.APIOptions = append(o.APIOptions, f.attemptTimeout().add)
	if f.Attempts > 0 {
		o.RetryMaxAttempts = f.Attempts
	}
}
