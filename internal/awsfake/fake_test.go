package awsfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

const region = "us-east-1"

// setup starts a fake and loads the SDK config the way the agent does in
// an ECS task: default chain, container credentials, AWS_ENDPOINT_URL.
func setup(t *testing.T) (*awsfake.Fake, aws.Config) {
	t.Helper()
	f := awsfake.New()
	t.Cleanup(f.Close)

	// Keep the developer's own AWS setup out of the credential chain.
	f.SetenvIsolated(t.Setenv, region, t.TempDir())

	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRetryer(func() aws.Retryer {
			// Real retry decisions, no waiting between attempts.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		}))
	if err != nil {
		t.Fatal(err)
	}
	return f, cfg
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestEnvHasNoStaticKeys(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	env := strings.Join(f.Env("eu-west-1"), "\n")
	for _, want := range []string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + f.CredentialsURL,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=" + f.Token,
		"AWS_ENDPOINT_URL=" + f.URL,
		"AWS_REGION=eu-west-1",
		"AWS_EC2_METADATA_DISABLED=true",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %q", want)
		}
	}
	if strings.Contains(env, "AWS_ACCESS_KEY_ID") || strings.Contains(env, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("Env() has static keys:\n%s", env)
	}
}

func TestCredentialsEndpoint(t *testing.T) {
	f := awsfake.New()
	defer f.Close()

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "nope", http.StatusUnauthorized},
		{"token", f.Token, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, f.CredentialsURL, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != http.StatusOK {
				return
			}
			var got struct{ AccessKeyId, SecretAccessKey, Token, Expiration, RoleArn string }
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			exp, err := time.Parse(time.RFC3339, got.Expiration)
			if err != nil || time.Until(exp) < 50*time.Minute {
				t.Errorf("Expiration = %q (%v), want RFC3339 about an hour ahead", got.Expiration, err)
			}
			if got.AccessKeyId != f.AccessKeyID || got.Token != f.SessionToken || got.SecretAccessKey == "" || got.RoleArn == "" {
				t.Errorf("credentials = %+v", got)
			}
		})
	}
	if got := f.CredentialRequests(); got != 3 {
		t.Errorf("CredentialRequests() = %d, want 3", got)
	}
}

func TestSDKUsesContainerCredentials(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "a", "1", false)
	if _, err := ssm.NewFromConfig(cfg).GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if f.CredentialRequests() != 1 || f.SignatureFailures() != 0 {
		t.Errorf("CredentialRequests() = %d, SignatureFailures() = %d; want 1, 0", f.CredentialRequests(), f.SignatureFailures())
	}
}

func TestSignatureCheck(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	f.PutParameter(region, "a", "1", false)

	tests := []struct {
		name           string
		key, secret    string
		token          string
		wantCode       string
		wantSigFailure bool
	}{
		{"valid", f.AccessKeyID, f.SecretAccessKey, f.SessionToken, "", false},
		{"wrong secret key", f.AccessKeyID, "wrong-secret", f.SessionToken, "InvalidSignatureException", true},
		{"wrong access key", "ASIAWRONGWRONGWRONG1", f.SecretAccessKey, f.SessionToken, "UnrecognizedClientException", true},
		{"wrong session token", f.AccessKeyID, f.SecretAccessKey, "other", "UnrecognizedClientException", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.ResetCounts()
			client := ssm.New(ssm.Options{
				Region:       region,
				BaseEndpoint: aws.String(f.URL),
				Credentials:  credentials.NewStaticCredentialsProvider(tt.key, tt.secret, tt.token),
			})
			_, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}})
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			want := 0
			if tt.wantSigFailure {
				want = 1
			}
			if got := f.SignatureFailures(); got != want {
				t.Errorf("SignatureFailures() = %d, want %d", got, want)
			}
		})
	}
}

func TestWrongSigningService(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	// An SSM request signed for Secrets Manager must not pass.
	client := ssm.New(ssm.Options{
		Region:       region,
		BaseEndpoint: aws.String(f.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(f.AccessKeyID, f.SecretAccessKey, f.SessionToken),
	}, ssm.WithSigV4SigningName("secretsmanager"))
	_, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}})
	if got := errorCode(err); got != "InvalidSignatureException" {
		t.Fatalf("error code = %q (%v), want InvalidSignatureException", got, err)
	}
}

func TestUnknownOperation(t *testing.T) {
	f, cfg := setup(t)
	_, err := ecs.NewFromConfig(cfg).ListClusters(context.Background(), &ecs.ListClustersInput{})
	if got := errorCode(err); got != "UnknownOperationException" {
		t.Fatalf("error code = %q (%v), want UnknownOperationException", got, err)
	}
	if got := f.Calls("ListClusters"); got != 1 {
		t.Errorf(`Calls("ListClusters") = %d, want 1`, got)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     awsfake.APIError
		failFirst int32 // attempts that fail; the SDK makes at most 3
		wantCode  string
		wantCalls int
	}{
		{"throttled then ok", awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}, 2, "", 3},
		{"throttled throughout", awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}, 100, "ThrottlingException", 3},
		{"server error", awsfake.APIError{Status: 500, Code: "InternalServerError"}, 100, "InternalServerError", 3},
		{"unavailable once", awsfake.APIError{Status: 503, Code: "ServiceUnavailable"}, 1, "", 2},
		{"not retried", awsfake.APIError{Status: 400, Code: "ValidationException", Message: "bad"}, 100, "ValidationException", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, cfg := setup(t)
			f.PutParameter(region, "a", "1", false)
			var n atomic.Int32
			f.SetFault(func(op string) *awsfake.APIError {
				if op == "GetParameters" && n.Add(1) <= tt.failFirst {
					e := tt.fault
					return &e
				}
				return nil
			})
			_, err := ssm.NewFromConfig(cfg).GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}})
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if got := f.Calls("GetParameters"); got != tt.wantCalls {
				t.Errorf(`Calls("GetParameters") = %d, want %d`, got, tt.wantCalls)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "a", "1", false)
	client := ssm.NewFromConfig(cfg)
	// Fetch credentials first so only the API call is timed.
	if _, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	const d = 150 * time.Millisecond
	f.SetLatency(d)
	start := time.Now()
	if _, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < d {
		t.Errorf("call took %v, want at least %v", got, d)
	}
}

func TestCallLog(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "a", "1", false)
	f.PutSecretString(region, "s", "x")
	ctx := context.Background()
	if _, err := ssm.NewFromConfig(cfg).GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"a", "b"}, WithDecryption: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	log := f.CallLog()
	if len(log) != 2 {
		t.Fatalf("CallLog() = %+v, want 2 calls", log)
	}
	if c := log[0]; c.Op != "GetParameters" || c.Region != region || strings.Join(c.Names, ",") != "a,b" || !c.WithDecryption || c.Time.IsZero() {
		t.Errorf("CallLog()[0] = %+v", c)
	}
	if c := log[1]; c.Op != "GetSecretValue" || c.Region != region || strings.Join(c.Names, ",") != "s" {
		t.Errorf("CallLog()[1] = %+v", c)
	}
	f.ResetCounts()
	if len(f.CallLog()) != 0 || f.Calls("GetParameters") != 0 || f.CredentialRequests() != 0 {
		t.Error("ResetCounts() left counts behind")
	}
}

// TestConcurrent drives 1,000 simultaneous SDK calls through the fake.
func TestConcurrent(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "/p", "v", true)
	f.PutSecretString(region, "s", "x")
	ssmClient, smClient := ssm.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
	ctx := context.Background()

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = ssmClient.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}, WithDecryption: aws.Bool(true)})
			} else {
				_, err = smClient.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := f.Calls("GetParameters") + f.Calls("GetSecretValue"); got != n {
		t.Errorf("calls = %d, want %d", got, n)
	}
	if f.SignatureFailures() != 0 {
		t.Errorf("SignatureFailures() = %d", f.SignatureFailures())
	}
}
