package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// A reference in a region the feed does not serve, named by the request's
// region for a bare name or by its ARN, is answered with an error, and is
// never tracked or polled; the served refs of the same request work as
// ever. The server serves eu-west-1 (the harness's default).
func TestUnservedRegionsRefused(t *testing.T) {
	const (
		westParamARN = "arn:aws:ssm:us-west-2:111122223333:parameter/prod/api/key"
		westSecret   = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf"
		euParamARN   = "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/api/key"
		euParamKey   = "ssm eu-west-1 " + euParamARN
		notServed    = `"error":"region us-west-2 is not served by this feed (--feed-regions eu-west-1)"`
	)
	for _, tc := range []struct {
		name    string
		body    string
		code    int
		answer  string
		after   time.Duration // when the answer comes
		calls   [][]string    // the Versions calls, by the end of the case
		tracked int
		refused float64
	}{
		{
			name: "request region not served",
			// A Secrets Manager secret read through Parameter Store too:
			// its region is the request's.
			body: `{"region":"us-west-2","wait":"0s","refs":{"/prod/api/key":"","/aws/reference/secretsmanager/db":""}}`,
			code: 200,
			answer: `{"refs":{"/aws/reference/secretsmanager/db":{"age":0,` + notServed + `},` +
				`"/prod/api/key":{"age":0,` + notServed + `}},"changed":[],"interval":"1m0s"}`,
			refused: 2,
		},
		{
			name:    "parameter ARN in a region not served",
			body:    `{"region":"eu-west-1","wait":"0s","refs":{"` + westParamARN + `":"3"}}`,
			code:    200,
			answer:  `{"refs":{"` + westParamARN + `":{"age":0,` + notServed + `}},"changed":[],"interval":"1m0s"}`,
			refused: 1,
		},
		{
			name:    "secret ARN and a pinned one in a region not served",
			body:    `{"region":"eu-west-1","wait":"0s","refs":{"` + westSecret + `:password::":"v1","` + westSecret + `:::a1b2c3d4-5678-90ab-cdef-111111111111":""}}`,
			code:    200,
			answer:  `{"refs":{"` + westSecret + `:::a1b2c3d4-5678-90ab-cdef-111111111111":{"age":0,` + notServed + `},"` + westSecret + `:password::":{"age":0,` + notServed + `}},"changed":[],"interval":"1m0s"}`,
			refused: 2,
		},
		{
			// Nothing to wait on, but held for its wait all the same: a
			// client asks again as soon as it is answered, and an answer
			// at once would have it ask every second.
			name:    "only refused refs: held for the wait",
			body:    `{"region":"us-west-2","wait":"30s","refs":{"/prod/api/key":""}}`,
			code:    200,
			answer:  `{"refs":{"/prod/api/key":{"age":0,` + notServed + `}},"changed":[],"interval":"1m0s"}`,
			after:   30 * time.Second,
			refused: 1,
		},
		{
			// The request's region is not served, an ARN in a served one
			// is: that one is read as ever, answered at its first read.
			name: "mixed",
			body: `{"region":"us-west-2","refs":{"/prod/api/key":"","` + euParamARN + `":"","` + dbARN + `":"v1","` + westSecret + `":""}}`,
			code: 200,
			answer: `{"refs":{"/prod/api/key":{"age":0,` + notServed + `},` +
				`"` + dbARN + `":{"version":"v1","age":0},` +
				`"` + westSecret + `":{"age":0,` + notServed + `},` +
				`"` + euParamARN + `":{"version":"3","age":0}},` +
				`"changed":["` + euParamARN + `"],"interval":"1m0s"}`,
			after:   coalesceDelay,
			calls:   [][]string{{dbKey, euParamKey}},
			tracked: 2,
			refused: 2,
		},
		{
			// Refusing a ref does not skip the request's checks.
			name:   "refused refs and an invalid one",
			body:   `{"region":"us-west-2","refs":{"/prod/api/key":"","arn:aws:s3:::b":""}}`,
			code:   400,
			answer: `{"error":"refs: invalid valueFrom \"arn:aws:s3:::b\": service must be \"ssm\" or \"secretsmanager\", got \"s3\""}`,
		},
		{
			name:   "malformed request region",
			body:   `{"region":"us-west","refs":{"/prod/api/key":""}}`,
			code:   400,
			answer: `{"error":"region: \"us-west\" is not an AWS region (\"eu-west-1\")"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, ServerOptions{})
				h.src.set(euParamKey, "3")
				h.src.set(dbKey, "v1")
				t0 := time.Now()
				want(t, h.ask(tc.body), tc.code, tc.answer)
				if d := time.Since(t0); d != tc.after {
					t.Errorf("answered after %s, want %s", d, tc.after)
				}
				// Past the prompt poll and a full one: whatever was
				// tracked has been polled.
				time.Sleep(time.Minute + time.Second)
				var wantCalls [][]string
				if tc.calls != nil {
					wantCalls = append(tc.calls, tc.calls...) // the prompt poll, then the full one
				}
				if got := h.src.callLog(); !slices.EqualFunc(got, wantCalls, slices.Equal) {
					t.Errorf("Versions calls %q, want %q", got, wantCalls)
				}
				if got := h.tracked(); got != tc.tracked {
					t.Errorf("%d keys tracked, want %d", got, tc.tracked)
				}
				if got := h.metric("ecs_secrets_agent_feed_refused_references_total"); got != tc.refused {
					t.Errorf("refused references %v, want %v", got, tc.refused)
				}
			})
		})
	}
}

// The error names every served region, in the order given, once.
func TestRefusedErrorNamesTheServedRegions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{Regions: []string{"eu-west-1", "us-east-1", "eu-west-1"}})
		want(t, h.ask(`{"region":"us-west-2","wait":"0s","refs":{"/p":""}}`), 200,
			`{"refs":{"/p":{"age":0,"error":"region us-west-2 is not served by this feed (--feed-regions eu-west-1,us-east-1)"}},"changed":[],"interval":"1m0s"}`)
		// A server given no region serves none.
		h = start(t, ServerOptions{Regions: []string{}})
		want(t, h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/p":""}}`), 200,
			`{"refs":{"/p":{"age":0,"error":"region eu-west-1 is not served by this feed (it serves no region)"}},"changed":[],"interval":"1m0s"}`)
		if h.tracked() != 0 {
			t.Errorf("%d tracked by a server that serves no region", h.tracked())
		}
	})
}

func decodeAnswerOf(t *testing.T, a answer) Response {
	t.Helper()
	var r Response
	if err := json.Unmarshal([]byte(a.body), &r); err != nil {
		t.Fatalf("answer %d %q: %v", a.code, a.body, err)
	}
	return r
}

// countingClients are fetch.NewClients that record each region a client
// was asked for.
type countingClients struct {
	mu      sync.Mutex
	regions []string // "ssm REGION", "secretsmanager REGION", in order
}

func (c *countingClients) wrap(real fetch.Clients) fetch.Clients {
	return fetch.Clients{
		SSM: func(region string) fetch.SSMClient {
			c.add("ssm " + region)
			return real.SSM(region)
		},
		SecretsManager: func(region string) fetch.SecretsManagerClient {
			c.add("secretsmanager " + region)
			return real.SecretsManager(region)
		},
	}
}

func (c *countingClients) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.regions, s) {
		c.regions = append(c.regions, s)
	}
}

func (c *countingClients) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.regions)
}

// A request naming 1,000 made-up regions ("aa-foo-1", "aa-foo-2", ...)
// makes the watcher create no SDK client and send no AWS call: it is the
// real Fetcher over the wire-level fake, and its clients are counted.
func TestThousandMadeUpRegionsCreateNothing(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, "eu-west-1", t.TempDir())
	fake.PutParameter("eu-west-1", "/prod/api/key", "not-a-real-value", true)
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Retryer = func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) }
	counted := &countingClients{}
	h := start(t, ServerOptions{
		Source: &fetch.Fetcher{Clients: counted.wrap(fetch.NewClients(cfg)), Region: "eu-west-1", Attempts: 1},
	})

	var b strings.Builder
	b.WriteString(`{"region":"aa-foo-0","wait":"0s","refs":{"/prod/db":""`)
	for i := 1; i < MaxRefsPerRequest; i++ {
		fmt.Fprintf(&b, `,"arn:aws:ssm:aa-foo-%d:111122223333:parameter/p":""`, i)
	}
	b.WriteString(`}}`)
	a := h.ask(b.String())
	r := decodeAnswerOf(t, a)
	if a.code != 200 || len(r.Refs) != MaxRefsPerRequest || len(r.Changed) != 0 {
		t.Fatalf("answer %d with %d refs, %d changed", a.code, len(r.Refs), len(r.Changed))
	}
	bad := 0
	for vf, st := range r.Refs {
		region := "aa-foo-0" // the request's, for its one bare name
		if f := strings.Split(vf, ":"); len(f) > 3 {
			region = f[3]
		}
		if want := (RefState{Error: "region " + region + " is not served by this feed (--feed-regions eu-west-1)"}); st != want {
			if bad++; bad == 1 {
				t.Errorf("%s: %+v, want %+v", vf, st, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d refs not refused", bad, len(r.Refs))
	}

	// A served ref after it: its first read is the poll that would have
	// read anything the first request left to poll, so once it is
	// answered, every call the two requests cause has been made.
	a = <-h.askAsync(context.Background(), `{"region":"eu-west-1","wait":"30s","refs":{"/prod/api/key":""}}`)
	if r := decodeAnswerOf(t, a); r.Refs["/prod/api/key"].Version != "1" {
		t.Fatalf("served ref: %d %s", a.code, a.body)
	}
	if got, want := counted.list(), []string{"ssm eu-west-1"}; !slices.Equal(got, want) {
		t.Errorf("clients made for %d regions (%q…), want %q", len(got), got[:min(len(got), 3)], want)
	}
	var calls []string
	for _, c := range fake.CallLog() {
		calls = append(calls, fmt.Sprintf("%s %s %q", c.Op, c.Region, c.Names))
	}
	if want := []string{`GetParameters eu-west-1 ["/prod/api/key"]`}; !slices.Equal(calls, want) {
		t.Errorf("%d AWS calls (%q…), want %q", len(calls), calls[:min(len(calls), 3)], want)
	}
	if got := h.tracked(); got != 1 {
		t.Errorf("%d keys tracked, want the served one", got)
	}
	if got := h.metric("ecs_secrets_agent_feed_refused_references_total"); got != MaxRefsPerRequest {
		t.Errorf("refused references %v, want %d", got, MaxRefsPerRequest)
	}
}
