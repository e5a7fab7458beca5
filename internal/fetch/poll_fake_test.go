package fetch_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

const region = "us-east-1"

// observed is what an APIObserver was told.
type observed struct {
	mu    sync.Mutex
	calls []string // "service operation outcome"
}

func (o *observed) observe(service, operation, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		outcome += " (no latency)"
	}
	o.calls = append(o.calls, service+" "+operation+" "+outcome)
}

func (o *observed) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.calls
	o.calls = nil
	return c
}

// setup starts the fake and loads the config the agent loads in a task:
// container credentials, AWS_ENDPOINT_URL, and the observer.
func setup(t *testing.T) (*awsfake.Fake, *fetch.Fetcher, *observed) {
	t.Helper()
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	obs := &observed{}
	cfg, err := fetch.LoadAWSConfig(context.Background(), obs.observe)
	if err != nil {
		t.Fatal(err)
	}
	// The same retry decisions without waiting between attempts.
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = fetch.MaxAttempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		})
	}
	return fake, &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}, obs
}

// calls summarizes the fake's call log: "Op" plus, for GetParameters, the
// number of names and whether it decrypted.
func calls(fake *awsfake.Fake) []string {
	var out []string
	for _, c := range fake.CallLog() {
		s := c.Op
		if c.Op == "GetParameters" {
			s += fmt.Sprintf(" %d decrypt=%v", len(c.Names), c.WithDecryption)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestPollAgainstFake(t *testing.T) {
	fake, f, obs := setup(t)
	ctx := context.Background()

	// 25 parameters (one read by label), 3 secrets: one with three
	// requests, one plain, one through Parameter Store.
	var reqs []fetch.Request
	add := func(name, ref string) {
		r, err := fetch.ParseRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, fetch.Request{Name: name, Ref: r})
	}
	for i := range 24 {
		n := fmt.Sprintf("/app/p%02d", i)
		fake.PutParameter(region, n, "v1-"+n, i%2 == 0)
		add(fmt.Sprintf("P%02d", i), n)
	}
	fake.PutParameter(region, "/app/labelled", "l1", true)
	fake.PutParameter(region, "/app/labelled", "l2", true)
	fake.LabelParameter(region, "/app/labelled", 1, "prod")
	add("LABEL", "/app/labelled:prod")
	db := fake.PutSecretString(region, "app/db", `{"user":"u1","password":"p1"}`)
	api := fake.PutSecretString(region, "app/api", "k1")
	fake.PutSecretString(region, "app/token", "t1")
	add("DB", db)
	add("DB_USER", db+":user::")
	add("DB_PASSWORD", db+":password:AWSCURRENT:")
	add("API", api)
	add("TOKEN", "/aws/reference/secretsmanager/app/token")

	out, err := f.Fetch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.Values["TOKEN"].Version, fake.SecretVersionID(region, "app/token", "AWSCURRENT"); got == "" || got != want {
		t.Fatalf("reference version %q, want the secret's version id %q", got, want)
	}
	// 26 names to GetParameters (the reference too), one GetSecretValue
	// per secret and version (DB_PASSWORD names AWSCURRENT, which is what
	// the other app/db references read too).
	wantFetch := []string{"GetParameters 10 decrypt=true", "GetParameters 10 decrypt=true", "GetParameters 6 decrypt=true",
		"GetSecretValue", "GetSecretValue"}
	if got := calls(fake); !slices.Equal(got, wantFetch) {
		t.Errorf("Fetch calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantFetch, "\n"))
	}
	// Every attempt, and nothing of the credentials endpoint's.
	wantObs := append(repeat("SSM GetParameters success", 3), repeat("Secrets Manager GetSecretValue success", 2)...)
	if got := obs.take(); !sameSet(got, wantObs) || fake.CredentialRequests() == 0 {
		t.Errorf("observer saw:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantObs, "\n"))
	}
	fake.ResetCounts()

	t.Run("nothing changed", func(t *testing.T) {
		changed, err := f.Poll(ctx, reqs, out.Values)
		if err != nil || len(changed) != 0 {
			t.Fatalf("Poll = %q, %v; want nothing changed", changed, err)
		}
		// ceil(25/10) GetParameters without decryption + 3 DescribeSecret.
		want := []string{"DescribeSecret", "DescribeSecret", "DescribeSecret",
			"GetParameters 10 decrypt=false", "GetParameters 10 decrypt=false", "GetParameters 5 decrypt=false"}
		if got := calls(fake); !slices.Equal(got, want) {
			t.Errorf("Poll calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		wantObs := append(repeat("SSM GetParameters success", 3), repeat("Secrets Manager DescribeSecret success", 3)...)
		if got := obs.take(); !sameSet(got, wantObs) {
			t.Errorf("observer saw:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantObs, "\n"))
		}
		fake.ResetCounts()
	})

	t.Run("rotation", func(t *testing.T) {
		fake.PutParameter(region, "/app/p07", "v2", false)
		fake.LabelParameter(region, "/app/labelled", 2, "prod")
		fake.PutSecretString(region, "app/db", `{"user":"u2","password":"p2"}`)
		fake.PutSecretString(region, "app/token", "t2")
		changed, err := f.Poll(ctx, reqs, out.Values)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"P07", "LABEL", "DB", "DB_USER", "DB_PASSWORD", "TOKEN"}
		if !slices.Equal(changed, want) {
			t.Fatalf("changed = %q, want %q", changed, want)
		}
		for _, c := range fake.CallLog() {
			if c.WithDecryption || c.Op == "GetSecretValue" {
				t.Errorf("Poll decrypted: %+v", c)
			}
		}
		// Fetch what changed; then nothing has.
		var again []fetch.Request
		for _, r := range reqs {
			if slices.Contains(changed, r.Name) {
				again = append(again, r)
			}
		}
		got, err := f.Fetch(ctx, again)
		if err != nil {
			t.Fatal(err)
		}
		for name, res := range got.Values {
			out.Values[name] = res
		}
		if v := string(out.Values["DB_USER"].Value.Bytes()); v != "u2" {
			t.Errorf("DB_USER = %q after the rotation", v)
		}
		if changed, err := f.Poll(ctx, reqs, out.Values); err != nil || len(changed) != 0 {
			t.Errorf("Poll after refetching = %q, %v; want nothing changed", changed, err)
		}
		obs.take()
		fake.ResetCounts()
	})

	t.Run("outcomes", func(t *testing.T) {
		// The first DescribeSecret is throttled, the first GetParameters
		// fails in AWS; both are retried. app/api is denied throughout.
		var mu sync.Mutex
		faulted := map[string]bool{}
		fake.SetFault(func(op string) *awsfake.APIError {
			mu.Lock()
			defer mu.Unlock()
			if faulted[op] {
				return nil
			}
			faulted[op] = true
			switch op {
			case "DescribeSecret":
				return &awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
			case "GetParameters":
				return &awsfake.APIError{Status: 500, Code: "InternalServerError"}
			}
			return nil
		})
		t.Cleanup(func() { fake.SetFault(nil) })
		fake.DenyAccess("DescribeSecret", "app/api")
		changed, err := f.Poll(ctx, reqs, out.Values)
		if len(changed) != 0 {
			t.Errorf("changed = %q", changed)
		}
		var e *fetch.Error
		if !errorsAs(err, &e) || e.Name != "API" || e.Code != "AccessDeniedException" || e.Op != "DescribeSecret" {
			t.Errorf("Poll error = %v, want API denied DescribeSecret", err)
		}
		got := obs.take()
		want := append(repeat("SSM GetParameters success", 3), repeat("Secrets Manager DescribeSecret success", 2)...)
		want = append(want, "SSM GetParameters server_error", "Secrets Manager DescribeSecret throttled",
			"Secrets Manager DescribeSecret client_error")
		if !sameSet(got, want) {
			t.Errorf("observer saw:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if n := len(fake.CallLog()); n != len(got) {
			t.Errorf("the fake got %d calls, the observer saw %d", n, len(got))
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func errorsAs(err error, e **fetch.Error) bool {
	if err == nil {
		return false
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) != 1 {
		return false
	}
	*e, ok = j.Unwrap()[0].(*fetch.Error)
	return ok
}
