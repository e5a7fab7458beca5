package awsfake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

// clock is a bucket clock the test moves by hand, so that counts are exact.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// limited starts a fake behind the default quotas, and SDK clients for it
// whose retryer makes attempts attempts without waiting.
func limited(t *testing.T, attempts int) (*awsfake.Fake, *awsfake.Limiter, *clock, func(region string) *ssm.Client, *secretsmanager.Client) {
	t.Helper()
	f, cfg := setup(t)
	clk := &clock{t: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	l := awsfake.NewLimiter(f, awsfake.DefaultQuotas(), clk.now)
	t.Cleanup(l.Close)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		})
	}
	ssmIn := func(r string) *ssm.Client {
		return ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(l.URL); o.Region = r })
	}
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(l.URL) })
	return f, l, clk, ssmIn, sm
}

// getParams makes n GetParameters calls and returns how many succeeded and
// the error of the first that failed.
func getParams(c *ssm.Client, n int) (ok int, first error) {
	for range n {
		_, err := c.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/a"}, WithDecryption: aws.Bool(true)})
		switch {
		case err == nil:
			ok++
		case first == nil:
			first = err
		}
	}
	return ok, first
}

func TestLimiterHoldsRateAndBurst(t *testing.T) {
	f, l, clk, ssmIn, _ := limited(t, 1)
	f.PutParameter(region, "/a", "v", true)
	c := ssmIn(region)

	// A full bucket: one second's worth at once, then nothing.
	if ok, err := getParams(c, 45); ok != 40 || errorCode(err) != "ThrottlingException" {
		t.Fatalf("burst: %d calls let through, first error %v; want 40 and ThrottlingException", ok, err)
	}
	// 40 a second: 100 ms refills 4 tokens.
	clk.advance(100 * time.Millisecond)
	if ok, _ := getParams(c, 10); ok != 4 {
		t.Errorf("after 100ms: %d calls let through, want 4", ok)
	}
	// Held at the rate over time: 10 s of 10 calls every 100 ms (100 a
	// second asked) lets 40 a second through.
	total := 0
	for range 100 {
		clk.advance(100 * time.Millisecond)
		ok, _ := getParams(c, 10)
		total += ok
	}
	if total != 400 {
		t.Errorf("10s at 100 calls/s asked: %d let through, want 400", total)
	}
	// An idle minute does not bank more than the bucket holds.
	clk.advance(time.Minute)
	if ok, _ := getParams(c, 100); ok != 40 {
		t.Errorf("after an idle minute: %d let through, want 40 (the burst)", ok)
	}
	// The fake behind sees only what was let through.
	got := l.Counts()["GetParameters"]
	if want := (awsfake.OpCount{Allowed: 484, Throttled: 671}); got != want {
		t.Errorf("Counts()[GetParameters] = %+v, want %+v", got, want)
	}
	if n := f.Calls("GetParameters"); n != 484 {
		t.Errorf("fake received %d GetParameters, want 484", n)
	}
}

func TestLimiterBucketsPerQuotaAndRegion(t *testing.T) {
	f, l, _, ssmIn, sm := limited(t, 1)
	f.PutParameter(region, "/a", "v", true)
	f.PutParameter("eu-west-1", "/a", "v", true)
	arn := f.PutSecretString(region, "db", "s3cr3t")
	ctx := context.Background()

	// GetParameter shares GetParameters' bucket.
	if ok, _ := getParams(ssmIn(region), 30); ok != 30 {
		t.Fatalf("%d GetParameters let through, want 30", ok)
	}
	ok := 0
	for range 20 {
		if _, err := ssmIn(region).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/a")}); err == nil {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("%d GetParameter let through after 30 GetParameters, want 10", ok)
	}
	// Another region has its own.
	if ok, _ := getParams(ssmIn("eu-west-1"), 40); ok != 40 {
		t.Errorf("eu-west-1: %d let through, want 40", ok)
	}
	// Secrets Manager: GetSecretValue and DescribeSecret share 10,000.
	okSM := 0
	for i := range 60 {
		var err error
		if i%2 == 0 {
			_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		} else {
			_, err = sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
		}
		if err == nil {
			okSM++
		}
	}
	if okSM != 60 {
		t.Errorf("Secrets Manager: %d of 60 let through", okSM)
	}
	// Operations without a quota are never refused.
	for range 50 {
		if _, err := ssmIn(region).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/lock"), Value: aws.String("x"), Type: "String", Overwrite: aws.Bool(true)}); err != nil {
			t.Fatalf("PutParameter: %v", err)
		}
	}
	if got := l.Counts()["PutParameter"]; got != (awsfake.OpCount{Allowed: 50}) {
		t.Errorf("Counts()[PutParameter] = %+v", got)
	}
}

func TestLimiterSmallSecretsManagerQuota(t *testing.T) {
	f, l, _, _, sm := limited(t, 1)
	arn := f.PutSecretString(region, "db", "s3cr3t")
	l.SetQuotas([]awsfake.Quota{{Name: "sm", Ops: []string{"GetSecretValue", "DescribeSecret"}, Rate: 1, Burst: 3}})
	ctx := context.Background()
	var codes []string
	for range 2 {
		_, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
		codes = append(codes, errorCode(err))
		_, err = sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		codes = append(codes, errorCode(err))
		// The value never reaches an error.
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("error carries the value: %v", err)
		}
	}
	if got, want := strings.Join(codes, ","), ",,,ThrottlingException"; got != want {
		t.Errorf("codes = %q, want %q", got, want)
	}
}

// The SDK's retryer sees a throttle, retries it, and reports it as
// throttling; on the wire it is what AWS sends.
func TestLimiterThrottleIsWhatAWSSends(t *testing.T) {
	f, l, _, ssmIn, _ := limited(t, 3)
	f.PutParameter(region, "/a", "v", true)
	l.SetQuotas([]awsfake.Quota{{Name: "ssm-get", Ops: []string{"GetParameters"}, Rate: 1, Burst: 1}})
	c := ssmIn(region)
	if ok, err := getParams(c, 1); ok != 1 {
		t.Fatalf("first call: %v", err)
	}
	_, err := getParams(c, 1)
	if err == nil {
		t.Fatal("second call let through")
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Errorf("the SDK does not classify %v as throttling", err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("error %v: want an HTTP 400 response error", err)
	}
	if !strings.Contains(err.Error(), "exceeded maximum number of attempts, 3") || !strings.Contains(err.Error(), "StatusCode: 400") || !strings.Contains(err.Error(), "ThrottlingException: Rate exceeded") {
		t.Errorf("error = %v", err)
	}
	if got := l.Counts()["GetParameters"]; got != (awsfake.OpCount{Allowed: 1, Throttled: 3}) {
		t.Errorf("Counts() = %+v, want 1 allowed and 3 throttled (the SDK retried twice)", got)
	}

	// The bytes. The bucket is the region's the request is signed for,
	// and the refusal comes before the signature is checked.
	req, _ := http.NewRequest(http.MethodPost, l.URL, strings.NewReader(`{"Names":["/a"]}`))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261130/"+region+"/ssm/aws4_request, SignedHeaders=host, Signature=00")
	req.Header.Set("X-Amz-Target", "AmazonSSM.GetParameters")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" ||
		string(body) != `{"__type":"ThrottlingException","message":"Rate exceeded"}` {
		t.Errorf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestQuotaScaled(t *testing.T) {
	q := awsfake.DefaultQuotas()[0]
	s := q.Scaled(10)
	if s.Rate != 400 || s.Burst != 40 || q.Rate != 40 {
		t.Errorf("Scaled(10) = %+v from %+v; want rate 400, burst 40, original unchanged", s, q)
	}
}

func TestLimiterCountsByCaller(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "/a", "v", false)
	l := awsfake.NewLimiter(f, []awsfake.Quota{{Name: "ssm", Ops: []string{"GetParameters"}, Rate: 1, Burst: 3}}, func() time.Time { return time.Time{} })
	defer l.Close()
	l.CountBy(func(r *http.Request) string {
		if strings.Contains(r.Header.Get("User-Agent"), "app/fleet") {
			return "fleet"
		}
		return "other"
	})
	fleet := cfg.Copy()
	fleet.AppID = "fleet"
	for _, c := range []aws.Config{fleet, fleet, cfg, fleet, cfg} {
		_, _ = ssm.NewFromConfig(c, func(o *ssm.Options) { o.BaseEndpoint = aws.String(l.URL); o.RetryMaxAttempts = 1 }).
			GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/a"}})
	}
	if got, want := l.CountsOf("fleet")["GetParameters"], (awsfake.OpCount{Allowed: 2, Throttled: 1}); got != want {
		t.Errorf("fleet: %+v, want %+v", got, want)
	}
	if got, want := l.CountsOf("other")["GetParameters"], (awsfake.OpCount{Allowed: 1, Throttled: 1}); got != want {
		t.Errorf("other: %+v, want %+v", got, want)
	}
	if got, want := l.Counts()["GetParameters"], (awsfake.OpCount{Allowed: 3, Throttled: 2}); got != want {
		t.Errorf("all: %+v, want %+v", got, want)
	}
}
