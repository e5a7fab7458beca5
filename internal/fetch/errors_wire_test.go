package fetch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// noWait is the agent's retry policy without the waits between attempts.
func noWait() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = fetch.MaxAttempts
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.RateLimiter = ratelimit.None
	})
}

// standIn is an httptest server closed when the test ends.
func standIn(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// hangingServer answers nothing until the client gives up or the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	s := standIn(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Registered after standIn's Close, so it runs before it.
	t.Cleanup(func() { close(release) })
	return s
}

// fetchOne runs the real SDK against the fake (or the stand-ins that replace
// its API or credentials endpoint) and returns the one error for /p.
func fetchOne(t *testing.T, api, creds string, callTimeout time.Duration) *fetch.Error {
	t.Helper()
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	fake.PutParameter(region, "/p", "s3cr3t-value", true)
	if api != "" {
		t.Setenv("AWS_ENDPOINT_URL", api)
	}
	if creds != "" {
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds)
	}
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil, config.WithRetryer(noWait))
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region, CallTimeout: callTimeout}
	// Generous: the test fails instead of hanging if a deadline is missing.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = f.Fetch(ctx, []fetch.Request{{Name: "P", Ref: mustParse(t, "/p")}})
	if ctx.Err() != nil {
		t.Fatal("Fetch ran into the test's own deadline: a call has no deadline")
	}
	errs := fetch.Errors(err)
	if len(errs) != 1 {
		t.Fatalf("errors %v, want one", errs)
	}
	var fe *fetch.Error
	if !errors.As(errs[0], &fe) {
		t.Fatalf("%T is not a *fetch.Error", errs[0])
	}
	if strings.Contains(fe.Error(), "s3cr3t") {
		t.Errorf("error shows the value: %v", fe)
	}
	return fe
}

func mustParse(t *testing.T, s string) fetch.Ref {
	t.Helper()
	r, err := fetch.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestErrorsNameTheRealCause protects the cause an error line gives: a
// credentials endpoint that is down, failing or hanging was reported as "no
// credentials: give the task a task role" and classed permanent; a malformed
// response body as "could not reach the endpoint"; a hung call never ended.
func TestErrorsNameTheRealCause(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	downURL := closed.URL + "/creds"
	closed.Close()
	downHost := strings.TrimPrefix(closed.URL, "http://")

	for _, tc := range []struct {
		name        string
		api, creds  http.HandlerFunc
		credsURL    string // instead of a creds handler
		code        string
		class       fetch.Class
		wantSuffix  string // after "secret P (valueFrom /p): CODE: "
		callTimeout time.Duration
	}{
		{
			name: "credentials endpoint down", credsURL: downURL,
			code: "CredentialsUnavailable", class: fetch.Transient,
			wantSuffix: "could not reach the container credentials endpoint (dial tcp " + downHost + ": connect: connection refused); the agent retries",
		},
		{
			name: "credentials endpoint answers 500",
			creds: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"code":"InternalError","message":"credentials service is restarting"}`))
			},
			code: "CredentialsUnavailable", class: fetch.Transient,
			wantSuffix: "the container credentials endpoint answered 500 Internal Server Error; the agent retries (AWS: credentials service is restarting)",
		},
		{
			name: "credentials endpoint hangs", callTimeout: 300 * time.Millisecond,
			code: "CredentialsUnavailable", class: fetch.Transient,
			wantSuffix: "the container credentials endpoint gave no answer within 300ms; the agent retries",
		},
		{
			name: "credentials endpoint says no role",
			creds: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"code":"InvalidIdentityToken","message":"the task has no task role"}`))
			},
			code: "NoCredentials", class: fetch.Permanent,
			wantSuffix: "no credentials: give the task a task role (taskRoleArn); outside ECS set the usual AWS credential variables (AWS: the task has no task role)",
		},
		{
			name: "malformed response body",
			api: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				_, _ = w.Write([]byte(`{"Parameters":[{"Name":"/p","Value":`))
			},
			code: "BadResponse", class: fetch.Transient,
			wantSuffix: "the ssm endpoint in us-east-1 sent a response that could not be read (cut off, or not in AWS's format: a proxy answering in its place?); the agent retries",
		},
		{
			name: "API call hangs", callTimeout: 300 * time.Millisecond,
			code: "NoAnswer", class: fetch.Transient,
			wantSuffix: "no answer from the ssm endpoint in us-east-1 within 300ms (each attempt's deadline): AWS is slow or the network path drops packets; the agent retries",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var api, creds string
			switch {
			case tc.name == "API call hangs":
				api = hangingServer(t).URL
			case tc.api != nil:
				api = standIn(t, tc.api).URL
			}
			switch {
			case tc.credsURL != "":
				creds = tc.credsURL
			case tc.name == "credentials endpoint hangs":
				creds = hangingServer(t).URL + "/creds"
			case tc.creds != nil:
				creds = standIn(t, tc.creds).URL + "/creds"
			}
			fe := fetchOne(t, api, creds, tc.callTimeout)
			if fe.Code != tc.code || fe.Class() != tc.class {
				t.Errorf("code %s class %s, want %s %s (%v)", fe.Code, fe.Class(), tc.code, tc.class, fe)
			}
			if want := "secret P (valueFrom /p): " + tc.code + ": " + tc.wantSuffix; fe.Error() != want {
				t.Errorf("error\n got %s\nwant %s", fe.Error(), want)
			}
		})
	}
}

// TestErrorKeepsAWSMessage protects AWS's own message on the error line: it
// is what tells an SCP from a permissions boundary from a resource policy.
func TestErrorKeepsAWSMessage(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	fake.PutParameter(region, "/p", "v", true)
	fake.DenyAccess("GetParameters", "/p")
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil, config.WithRetryer(noWait))
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	_, err = f.Fetch(context.Background(), []fetch.Request{{Name: "P", Ref: mustParse(t, "/p")}})
	want := "secret P (valueFrom /p): AccessDeniedException: access denied: the task role needs ssm:GetParameters on this resource (and kms:Decrypt on its key if it uses a customer managed key)" +
		" (AWS: User: arn:aws:sts::" + awsfake.Account + ":assumed-role/ecs-task-role/fake-task is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:" + awsfake.Account + ":parameter/p because no identity-based policy allows the ssm:GetParameters action)"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
}

// A call whose deadline passes while the SDK waits between retries must
// report what AWS last answered: "Timeout" alone hides the cause to fix.
func TestDeadlineBetweenRetriesKeepsTheLastAnswer(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	fake.PutParameter(region, "/p", "s3cr3t-value", true)
	fake.SetFault(func(string) *awsfake.APIError {
		return &awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
	})
	// The agent's own retryer: its backoff, not the test, outlasts the deadline.
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = f.Fetch(ctx, []fetch.Request{{Name: "P", Ref: mustParse(t, "/p")}})
	errs := fetch.Errors(err)
	var e *fetch.Error
	if len(errs) != 1 || !errors.As(errs[0], &e) {
		t.Fatalf("errors %v, want one *fetch.Error", errs)
	}
	if e.Code != "ThrottlingException" || e.Class() != fetch.Transient || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("code %s class %s (%v), want ThrottlingException, transient, wrapping the deadline", e.Code, e.Class(), e)
	}
	if strings.Contains(e.Error(), "s3cr3t-value") {
		t.Error("value in the error")
	}
}
