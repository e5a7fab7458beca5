package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fakeSSM serves GetParameters from a map of query → parameter. Any call
// that breaks an AWS limit, asks for a name twice, or asks with a
// WithDecryption other than decrypt fails the test.
type fakeSSM struct {
	t       *testing.T
	decrypt bool                          // what every call must ask for: Fetch decrypts, Poll never does
	params  map[string]ssmtypes.Parameter // by the query string that finds it
	deny    map[string]bool
	mu      sync.Mutex
	calls   []ssmCall
}

type ssmCall struct {
	names   []string
	decrypt bool
}

func (f *fakeSSM) GetParameters(_ context.Context, in *ssm.GetParametersInput, _ ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	decrypt := aws.ToBool(in.WithDecryption)
	f.calls = append(f.calls, ssmCall{names: in.Names, decrypt: decrypt})
	if decrypt != f.decrypt {
		f.t.Errorf("GetParameters(%q) WithDecryption=%v, want %v", in.Names, decrypt, f.decrypt)
	}
	if len(in.Names) > MaxNamesPerCall {
		f.t.Errorf("GetParameters with %d names", len(in.Names))
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "too many names"}
	}
	out := &ssm.GetParametersOutput{}
	seen := map[string]bool{}
	for _, n := range in.Names {
		if seen[n] {
			f.t.Errorf("GetParameters(%q) asks for %s twice", in.Names, n)
		}
		seen[n] = true
		if strings.HasPrefix(n, smReferencePrefix) && !decrypt {
			f.t.Errorf("GetParameters(%q): a Secrets Manager reference without decryption", in.Names)
			return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "WithDecryption flag must be True for retrieving a Secret Manager secret."}
		}
		if f.deny[n] {
			return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied"}
		}
		if p, ok := f.params[n]; ok {
			out.Parameters = append(out.Parameters, p)
		} else {
			out.InvalidParameters = append(out.InvalidParameters, n)
		}
	}
	return out, nil
}

// fakeSM serves GetSecretValue from values and DescribeSecret from stages;
// a call to either when its map is nil fails the test. gate, when set,
// holds every GetSecretValue call.
type fakeSM struct {
	t         *testing.T
	values    map[string]string              // by SecretId + "|" + stage + "|" + version
	stages    map[string]map[string][]string // VersionIdsToStages by SecretId
	deny      map[string]bool                // DescribeSecret denied, by SecretId
	mu        sync.Mutex
	calls     []string // GetSecretValue keys
	described []string // DescribeSecret region + " " + SecretId
	inflight  atomic.Int32
	peak      atomic.Int32
	gate      chan struct{}
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	key := aws.ToString(in.SecretId) + "|" + aws.ToString(in.VersionStage) + "|" + aws.ToString(in.VersionId)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, key)
	if f.values == nil {
		f.t.Errorf("unexpected GetSecretValue(%s)", key)
	}
	v, ok := f.values[key]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret."}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v), VersionId: aws.String("v-" + key)}, nil
}

func (f *fakeSM) describeSecret(region string, in *secretsmanager.DescribeSecretInput) (*secretsmanager.DescribeSecretOutput, error) {
	id := aws.ToString(in.SecretId)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.described = append(f.described, region+" "+id)
	if f.stages == nil {
		f.t.Errorf("unexpected DescribeSecret(%s)", id)
	}
	if f.deny[id] {
		return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied"}
	}
	st, ok := f.stages[id]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Secrets Manager can't find the specified secret."}
	}
	return &secretsmanager.DescribeSecretOutput{ARN: aws.String(id), VersionIdsToStages: st}, nil
}

// smIn is the fake as the client of one region.
type smIn struct {
	f      *fakeSM
	region string
}

func (c smIn) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return c.f.GetSecretValue(ctx, in, optFns...)
}

func (c smIn) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	return c.f.describeSecret(c.region, in)
}

func param(name, value string, version int64, selector, arn string) ssmtypes.Parameter {
	p := ssmtypes.Parameter{Name: aws.String(name), Value: aws.String(value), Version: version, ARN: aws.String(arn)}
	if selector != "" {
		p.Selector = aws.String(selector)
	}
	return p
}

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type fakes struct {
	ssm map[string]*fakeSSM
	sm  *fakeSM
}

// newFetcher wires the fakes to t, so that an unexpected call fails it.
func newFetcher(t *testing.T, fk *fakes) *Fetcher {
	for _, f := range fk.ssm {
		f.t = t
	}
	if fk.sm == nil {
		fk.sm = &fakeSM{}
	}
	fk.sm.t = t
	return &Fetcher{Region: "us-east-1", Clients: Clients{
		SSM: func(region string) SSMClient {
			if fk.ssm[region] == nil {
				panic("test fake: no SSM in " + region)
			}
			return fk.ssm[region]
		},
		SecretsManager: func(region string) SecretsManagerClient { return smIn{fk.sm, region} },
	}}
}

func TestFetchBatchesByTenPerRegionAndDeduplicates(t *testing.T) {
	east := &fakeSSM{decrypt: true, params: map[string]ssmtypes.Parameter{}}
	west := &fakeSSM{decrypt: true, params: map[string]ssmtypes.Parameter{}}
	var reqs []Request
	for i := range 25 {
		n := fmt.Sprintf("/p/%02d", i)
		east.params[n] = param(n, "value-"+n, 1, "", "arn:aws:ssm:us-east-1:111122223333:parameter"+n)
		reqs = append(reqs, Request{Name: fmt.Sprintf("E%02d", i), Ref: mustRef(t, n)})
	}
	// The same name twice costs one slot in a batch.
	reqs = append(reqs, Request{Name: "AGAIN", Ref: mustRef(t, "/p/00")})
	arn := "arn:aws:ssm:eu-west-1:444455556666:parameter/shared/x"
	west.params[arn+":2"] = param(arn, "shared-v2", 2, ":2", arn) // a shared parameter comes back named by its ARN
	west.params["/own"] = param("/own", "own", 1, "", "arn:aws:ssm:eu-west-1:111122223333:parameter/own")
	west.params["arn:aws:ssm:eu-west-1:111122223333:parameter/own:label"] = param("/own", "own-labelled", 1, ":label", "arn:aws:ssm:eu-west-1:111122223333:parameter/own")
	reqs = append(reqs,
		Request{Name: "SHARED", Ref: mustRef(t, arn+":2")},
		Request{Name: "OWN_LABEL", Ref: mustRef(t, "arn:aws:ssm:eu-west-1:111122223333:parameter/own:label")})

	sm := &fakeSM{values: map[string]string{
		"arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf|AWSCURRENT|":  `{"u":"user","p":"pass"}`,
		"arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf|AWSPREVIOUS|": `{"u":"old","p":"oldpass"}`,
	}}
	a := "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf"
	reqs = append(reqs,
		Request{Name: "WHOLE", Ref: mustRef(t, a)},
		Request{Name: "U", Ref: mustRef(t, a+":u::")},
		Request{Name: "P", Ref: mustRef(t, a+":p::")},
		Request{Name: "OLD_P", Ref: mustRef(t, a+":p:AWSPREVIOUS:")})

	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east, "eu-west-1": west}, sm: sm})
	out, err := f.Fetch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"E07": "value-/p/07", "AGAIN": "value-/p/00", "SHARED": "shared-v2",
		"OWN_LABEL": "own-labelled", "WHOLE": `{"u":"user","p":"pass"}`, "U": "user", "P": "pass", "OLD_P": "oldpass"}
	for name, v := range want {
		if got := string(out.Values[name].Value.Bytes()); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if got := len(out.Values); got != len(reqs) {
		t.Errorf("%d values, want %d", got, len(reqs))
	}
	sizes := []int{}
	for _, c := range east.calls {
		sizes = append(sizes, len(c.names))
	}
	sort.Ints(sizes)
	if fmt.Sprint(sizes) != "[5 10 10]" || len(west.calls) != 1 || len(west.calls[0].names) != 2 {
		t.Errorf("GetParameters batches: us-east-1 %v, eu-west-1 %v", sizes, west.calls)
	}
	if len(sm.calls) != 2 {
		t.Errorf("GetSecretValue calls = %v, want 2 (current and previous)", sm.calls)
	}
	if v := out.Values["E00"].Version; v != "1" {
		t.Errorf("version = %q", v)
	}
}

func TestFetchBoundsConcurrency(t *testing.T) {
	sm := &fakeSM{values: map[string]string{}, gate: make(chan struct{})}
	var reqs []Request
	for i := range 20 {
		id := fmt.Sprintf("arn:aws:secretsmanager:us-east-1:111122223333:secret:s%d", i)
		sm.values[id+"|AWSCURRENT|"] = "v"
		reqs = append(reqs, Request{Name: fmt.Sprintf("S%d", i), Ref: mustRef(t, id)})
	}
	f := newFetcher(t, &fakes{sm: sm})
	f.Concurrency = 4
	done := make(chan error)
	go func() {
		_, err := f.Fetch(context.Background(), reqs)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sm.inflight.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 4 calls ever in flight")
		}
		<-time.After(time.Millisecond) // poll with a deadline
	}
	close(sm.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := sm.peak.Load(); p != 4 {
		t.Errorf("peak in flight = %d, want 4", p)
	}
}

func TestFetchErrors(t *testing.T) {
	east := &fakeSSM{decrypt: true, params: map[string]ssmtypes.Parameter{"/ok": param("/ok", "v", 1, "", "")}, deny: map[string]bool{"/denied": true}}
	sm := &fakeSM{values: map[string]string{"arn:aws:secretsmanager:us-east-1:111122223333:secret:j|AWSCURRENT|": `{"a":"b"}`, "arn:aws:secretsmanager:us-east-1:111122223333:secret:t|AWSCURRENT|": "text-value"}}
	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east}, sm: sm})
	reqs := []Request{
		{Name: "OK", Ref: mustRef(t, "/ok")},
		{Name: "DENIED", Ref: mustRef(t, "/denied")},
		{Name: "MISSING", Ref: mustRef(t, "/missing")},
		{Name: "OPTIONAL", Ref: mustRef(t, "/missing2"), Optional: true},
		{Name: "NOKEY", Ref: mustRef(t, "arn:aws:secretsmanager:us-east-1:111122223333:secret:j:x::")},
		{Name: "OPTKEY", Ref: mustRef(t, "arn:aws:secretsmanager:us-east-1:111122223333:secret:j:y::"), Optional: true},
		{Name: "TEXT", Ref: mustRef(t, "arn:aws:secretsmanager:us-east-1:111122223333:secret:t:x::")},
		{Name: "GONE", Ref: mustRef(t, "arn:aws:secretsmanager:us-east-1:111122223333:secret:gone")},
	}
	out, err := f.Fetch(context.Background(), reqs)
	if len(out.Values) != 1 || string(out.Values["OK"].Value.Bytes()) != "v" {
		t.Errorf("values = %v", out.Values)
	}
	var skipped []string
	for _, e := range out.Skipped {
		skipped = append(skipped, e.Name+":"+e.Code)
	}
	if strings.Join(skipped, ",") != "OPTIONAL:ParameterNotFound,OPTKEY:KeyNotFound" {
		t.Errorf("skipped = %v", skipped)
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *Error
		if !errors.As(e, &fe) {
			t.Fatalf("%T is not *fetch.Error", e)
		}
		got = append(got, fmt.Sprintf("%s %s %s", fe.Name, fe.Code, fe.Class()))
		if strings.Contains(e.Error(), "text-value") || strings.Contains(e.Error(), `"b"`) {
			t.Errorf("error shows a value: %v", e)
		}
	}
	want := []string{"DENIED AccessDeniedException permanent", "MISSING ParameterNotFound permanent",
		"NOKEY KeyNotFound permanent", "TEXT NotJSONObject permanent", "GONE ResourceNotFoundException permanent"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// One batch denied as a whole, then one call per name to find the culprit.
	if len(east.calls) != 1+4 {
		t.Errorf("GetParameters calls = %v", east.calls)
	}
}

func TestErrorClassAndCode(t *testing.T) {
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}
	}
	tests := []struct {
		err   error
		code  string
		class Class
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, "ThrottlingException", Transient},
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, "AccessDeniedException", Permanent},
		{&smithy.GenericAPIError{Code: "InternalServerError"}, "InternalServerError", Transient},
		{errors.Join(status(503), &smithy.GenericAPIError{Code: "Weird"}), "Weird", Transient},
		{errParameterNotFound, "ParameterNotFound", Permanent},
		{context.DeadlineExceeded, "Timeout", Transient},
		{fmt.Errorf("get identity: %w", fmt.Errorf("%w: %w", ErrCredentials, &smithy.GenericAPIError{Code: "AccessDenied"})), "NoCredentials", Permanent},
		{errors.New("dial tcp: connection refused"), "RequestError", Transient},
	}
	for _, tt := range tests {
		e := &Error{Name: "N", Ref: Ref{Raw: "/x"}, Code: ErrorCode(tt.err), Err: tt.err}
		if e.Code != tt.code || e.Class() != tt.class {
			t.Errorf("%v: code %s class %s, want %s %s", tt.err, e.Code, e.Class(), tt.code, tt.class)
		}
		if e.Hint() == "" {
			t.Errorf("%s: empty hint", e.Code)
		}
	}
}
