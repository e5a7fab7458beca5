package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
)

// Attempts per AWS call. A one-shot render (init, the sidecar's first
// render) uses more than the SDK's default of 3, so that a task started with
// a thousand others rides out a burst of throttling. The refresh loop uses
// fewer (Fetcher.Attempts): it backs off and slows down by itself, and
// retrying hard inside a cycle would only fight the account's quota.
const (
	idleConnTimeout    = 30 * time.Second
	MaxAttempts        = 8
	RefreshMaxAttempts = 2
)

// Deadlines, so that a hung connection fails as a transient error instead of
// holding a refresh for as long as TCP retransmits (about 15 minutes).
const (
	// DefaultCallTimeout bounds each attempt of an AWS call, waiting for
	// credentials included, when Fetcher.CallTimeout is not set.
	DefaultCallTimeout = 10 * time.Second
	// CredentialsTimeout bounds each request to the container credentials
	// endpoint, a link-local service that answers in milliseconds.
	CredentialsTimeout = 5 * time.Second
)

// APIObserver is told about every AWS API attempt (each retry counts): the
// SDK service id ("SSM", "Secrets Manager", later "ECS"), the operation
// ("GetParameters"), a bounded outcome and the attempt's latency.
//
// Outcomes: "success", "throttled", "client_error", "server_error",
// "network_error". An attempt that fails before it is sent (no credentials)
// is not reported; calls to the container credentials endpoint are not AWS
// API calls and are not reported either.
type APIObserver func(service, operation, outcome string, d time.Duration)

// The outcomes an APIObserver is told; a bounded set, usable as a metric
// label.
const (
	OutcomeSuccess      = "success"
	OutcomeThrottled    = "throttled"     // a throttling code the SDK's retryer knows, or an unmodeled 429
	OutcomeClientError  = "client_error"  // any other 4xx
	OutcomeServerError  = "server_error"  // 5xx
	OutcomeNetworkError = "network_error" // no HTTP response: connection, timeout, cancellation
)

// LoadAWSConfig builds the one aws.Config of the process from the SDK's
// default chain: in a task, the ECS container credentials endpoint
// (AWS_CONTAINER_CREDENTIALS_*), and AWS_ENDPOINT_URL where set. obs, if
// not nil, is told about every attempt of every AWS API call made with a
// client built from it. extra options go last, so they override ours (tests
// use it for a retryer that does not wait).
func LoadAWSConfig(ctx context.Context, obs APIObserver, extra ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = 10 * time.Second
			})
		}),
		// Idle connections hold goroutines and buffers; a sidecar that
		// polls every few minutes should hold none between polls.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.IdleConnTimeout = idleConnTimeout
		})),
		// The SDK gives the credentials client no timeout of its own.
		// Nor a retryer we want: its own retries inside each API attempt
		// used up the start-up deadline and left only "Timeout" to report.
		// The API call's retryer repeats the attempt, credentials included,
		// and keeps the last answer.
		config.WithEndpointCredentialOptions(func(o *endpointcreds.Options) {
			o.HTTPClient = awshttp.NewBuildableClient().WithTimeout(CredentialsTimeout)
			o.Retryer = aws.NopRetryer{}
		}),
	}
	if obs != nil {
		opts = append(opts, config.WithAPIOptions([]func(*middleware.Stack) error{obs.addMiddleware}))
	}
	opts = append(opts, extra...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{cfg.Credentials}
	}
	return cfg, nil
}

// addMiddleware puts the observer last in the Finalize step: after the
// retry middleware, so it runs once per attempt, and after signing, so it
// times the round trip to AWS and not a credentials refresh.
func (obs APIObserver) addMiddleware(stack *middleware.Stack) error {
	return stack.Finalize.Add(observeAttempt{obs: obs, op: stack.ID()}, middleware.After)
}

type observeAttempt struct {
	obs APIObserver
	op  string // the stack's operation
}

func (observeAttempt) ID() string { return "ecs-secrets-agent/ObserveAttempt" }

func (m observeAttempt) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	if service == "" || op != m.op {
		// Not an AWS API: the container credentials endpoint's client
		// shares the config's APIOptions, and its ctx carries the service
		// and operation of the call it fetches credentials for.
		return next.HandleFinalize(ctx, in)
	}
	start := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	m.obs(service, op, attemptOutcome(err), time.Since(start))
	return out, md, err
}

// attemptOutcome classifies one attempt's error with the retryer's own
// notion of throttling, then by HTTP status.
func attemptOutcome(err error) string {
	if err == nil {
		return OutcomeSuccess
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return OutcomeThrottled
	}
	var re interface{ HTTPStatusCode() int }
	switch {
	case !errors.As(err, &re):
		return OutcomeNetworkError
	case re.HTTPStatusCode() >= 500:
		return OutcomeServerError
	}
	return OutcomeClientError
}

// attemptTimeout bounds one attempt of an AWS call. It sits right after the
// SDK's retry middleware, so it covers getting credentials, signing, sending
// and reading the response of each attempt.
type attemptTimeout time.Duration

func (attemptTimeout) ID() string { return "ecs-secrets-agent/AttemptTimeout" }

func (d attemptTimeout) add(stack *middleware.Stack) error {
	if d <= 0 {
		return nil
	}
	if err := stack.Initialize.Add(keepLastAnswer{}, middleware.Before); err != nil {
		return err
	}
	if err := stack.Finalize.Insert(d, "Retry", middleware.After); err != nil {
		// A stack without the SDK's retry: bound the whole call.
		return stack.Finalize.Add(d, middleware.Before)
	}
	return nil
}

func (d attemptTimeout) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	cause := &NoAnswerError{After: time.Duration(d)}
	ctx, cancel := context.WithTimeoutCause(ctx, time.Duration(d), cause)
	defer cancel()
	out, md, err := next.HandleFinalize(ctx, in)
	if err != nil && context.Cause(ctx) == cause {
		cause.Err = err
		err = cause
	}
	if last, ok := ctx.Value(lastAnswerKey{}).(*error); ok && err != nil {
		*last = err
	}
	return out, md, err
}

// keepLastAnswer makes a call that its deadline cut short between retries
// (throttled, or 5xx, until the start-up deadline) report what AWS last
// answered, not only that time ran out: that answer is the cause to fix.
type keepLastAnswer struct{}

type lastAnswerKey struct{}

func (keepLastAnswer) ID() string { return "ecs-secrets-agent/KeepLastAnswer" }

func (keepLastAnswer) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
	middleware.InitializeOutput, middleware.Metadata, error,
) {
	var last error
	out, md, err := next.HandleInitialize(context.WithValue(ctx, lastAnswerKey{}, &last), in)
	if err != nil && last != nil && errors.Is(err, context.DeadlineExceeded) && !errors.Is(last, context.DeadlineExceeded) {
		err = &CutShortError{Err: err, Last: last}
	}
	return out, md, err
}

// CutShortError is a call whose deadline passed while it was retrying;
// Last is the error of its last attempt (ErrorCode reports Last's AWS code).
type CutShortError struct {
	Err  error // the deadline's error
	Last error
}

func (e *CutShortError) Error() string {
	return fmt.Sprintf("%v; the last attempt failed: %v", e.Err, e.Last)
}

func (e *CutShortError) Unwrap() []error { return []error{e.Last, e.Err} }

// NoAnswerError is an attempt that got no complete answer within its
// deadline. It is transient: the caller retries later.
type NoAnswerError struct {
	After time.Duration
	Err   error // what the attempt returned when it was cut short
}

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("no answer within %s", e.After)
}

func (e *NoAnswerError) Unwrap() error { return e.Err }

type markedCredentials struct{ aws.CredentialsProvider }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return c, nil
}

// IsCredentialsProvider lets the SDK see the cache inside, so that clients
// do not wrap it in a cache of their own.
func (m markedCredentials) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(m.CredentialsProvider, target)
}

// NewClients returns one client per service and region, made on first use;
// all share cfg's credential cache and HTTP transport.
func NewClients(cfg aws.Config) Clients {
	var mu sync.Mutex
	ssmc := map[string]SSMClient{}
	smc := map[string]SecretsManagerClient{}
	return Clients{
		SSM: func(region string) SSMClient {
			mu.Lock()
			defer mu.Unlock()
			if ssmc[region] == nil {
				ssmc[region] = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region })
			}
			return ssmc[region]
		},
		SecretsManager: func(region string) SecretsManagerClient {
			mu.Lock()
			defer mu.Unlock()
			if smc[region] == nil {
				smc[region] = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.Region = region })
			}
			return smc[region]
		},
	}
}

func (f *Fetcher) attemptTimeout() attemptTimeout {
	if f.CallTimeout > 0 {
		return attemptTimeout(f.CallTimeout)
	}
	return attemptTimeout(DefaultCallTimeout)
}
