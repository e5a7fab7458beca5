package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const (
	arnA     = "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf"
	arnB     = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:b-AbCdEf"
	pinnedID = "0123456789abcdef0123456789abcdef" // a version id
)

// joined returns the *Error values of a Poll or Fetch error as
// "NAME CODE OP" lines.
func joined(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *Error
		if !errors.As(e, &fe) {
			t.Fatalf("%T is not *fetch.Error: %v", e, e)
		}
		out = append(out, fe.Name+" "+fe.Code+" "+fe.Op)
	}
	return out
}

func callNames(calls []ssmCall) []string {
	var names []string
	for _, c := range calls {
		names = append(names, c.names...)
	}
	return names
}

func TestPollNothingChangedCostsNoDecryption(t *testing.T) {
	east := &fakeSSM{params: map[string]ssmtypes.Parameter{}}
	have := map[string]Result{}
	var reqs []Request
	add := func(name, ref, version string) {
		reqs = append(reqs, Request{Name: name, Ref: mustRef(t, ref)})
		have[name] = Result{Version: version}
	}
	// 25 parameters: 24 names and a label, which can move, so is polled.
	for i := range 24 {
		n := fmt.Sprintf("/p/%02d", i)
		east.params[n] = param(n, "AQICAHh-ciphertext", 3, "", "")
		add(fmt.Sprintf("P%02d", i), n, "3")
	}
	east.params["/p/00:prod"] = param("/p/00", "AQICAHh-ciphertext", 2, ":prod", "")
	add("LABEL", "/p/00:prod", "2")
	// The same name twice costs nothing more.
	add("AGAIN", "/p/01", "3")
	// 3 secrets: four requests on one secret (keys and stages), one in
	// another region, one through Parameter Store.
	sm := &fakeSM{stages: map[string]map[string][]string{
		arnA: {"va1": {"AWSCURRENT"}, "va0": {"AWSPREVIOUS"}},
		arnB: {"vb": {"AWSCURRENT", "PROD"}},
		"c":  {"vc": {"AWSCURRENT"}},
	}}
	add("WHOLE", arnA, "va1")
	add("U", arnA+":u::", "va1")
	add("P", arnA+":p::", "va1")
	add("OLD_P", arnA+":p:AWSPREVIOUS:", "va0")
	add("B", arnB+"::PROD:", "vb")
	add("C", "/aws/reference/secretsmanager/c", "vc")
	// Pinned versions: never polled, even with a stale have.
	add("PIN_P", "/pinned:4", "1")
	add("PIN_S", "arn:aws:secretsmanager:us-east-1:111122223333:secret:d:::"+pinnedID, "old")

	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east}, sm: sm})
	changed, err := f.Poll(context.Background(), reqs, have)
	if err != nil || len(changed) != 0 {
		t.Fatalf("Poll = %q, %v; want nothing changed", changed, err)
	}
	var sizes []int
	for _, c := range east.calls {
		sizes = append(sizes, len(c.names))
	}
	sort.Ints(sizes)
	if fmt.Sprint(sizes) != "[5 10 10]" {
		t.Errorf("GetParameters batches %v, want [5 10 10] (ceil(25/10) calls)", sizes)
	}
	if slices.Contains(callNames(east.calls), "/pinned:4") {
		t.Error("a pinned parameter version was polled")
	}
	sort.Strings(sm.described)
	want := []string{"eu-west-1 " + arnB, "us-east-1 " + arnA, "us-east-1 c"}
	if !slices.Equal(sm.described, want) {
		t.Errorf("DescribeSecret calls %q, want %q", sm.described, want)
	}
	if len(sm.calls) != 0 {
		t.Errorf("GetSecretValue calls %q, want none", sm.calls)
	}
}

func TestPollDetectsChanges(t *testing.T) {
	east := &fakeSSM{params: map[string]ssmtypes.Parameter{
		"/same":     param("/same", "x", 1, "", ""),
		"/moved":    param("/moved", "x", 2, "", ""),
		"/l:prod":   param("/l", "x", 4, ":prod", ""),
		"/l:stable": param("/l", "x", 3, ":stable", ""),
	}}
	sm := &fakeSM{stages: map[string]map[string][]string{
		// a rotated: va2 is current, va1 previous, va0 lost its labels.
		arnA: {"va2": {"AWSCURRENT"}, "va1": {"AWSPREVIOUS"}},
		arnB: {"vb": {"AWSCURRENT"}},
		"c":  {"vc2": {"AWSCURRENT"}},
	}}
	tests := []struct {
		name, ref, have string
		changed         bool
	}{
		{"SAME", "/same", "1", false},
		{"MOVED", "/moved", "1", true},
		{"LABEL_MOVED", "/l:prod", "3", true},
		{"LABEL_STAYED", "/l:stable", "3", false},
		{"A", arnA, "va1", true},
		{"A_KEY", arnA + ":k::", "va1", true},
		{"A_PREVIOUS", arnA + "::AWSPREVIOUS:", "va0", true}, // the stage moved to another version
		{"B", arnB, "vb", false},
		{"B_KEY", arnB + ":k:AWSCURRENT:", "vb", false},
		{"C", "/aws/reference/secretsmanager/c", "vc1", true},
		{"NEW", "/new", "", true}, // absent from have
		{"PIN", arnB + ":::" + pinnedID, "whatever", false},
	}
	var reqs []Request
	have := map[string]Result{}
	var want []string
	for _, tt := range tests {
		reqs = append(reqs, Request{Name: tt.name, Ref: mustRef(t, tt.ref)})
		if tt.name != "NEW" {
			have[tt.name] = Result{Version: tt.have}
		}
		if tt.changed {
			want = append(want, tt.name)
		}
	}
	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east}, sm: sm})
	changed, err := f.Poll(context.Background(), reqs, have)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, want) {
		t.Errorf("changed = %q, want %q (in request order)", changed, want)
	}
	if len(east.calls) != 1 || slices.Contains(callNames(east.calls), "/new") {
		t.Errorf("GetParameters calls %v: want one, without the name absent from have", east.calls)
	}
	if len(sm.described) != 3 {
		t.Errorf("DescribeSecret calls %q, want 3", sm.described)
	}
}

func TestPollErrors(t *testing.T) {
	east := &fakeSSM{
		params: map[string]ssmtypes.Parameter{"/ok": param("/ok", "x", 2, "", ""), "/same": param("/same", "x", 1, "", "")},
		deny:   map[string]bool{"/denied": true},
	}
	sm := &fakeSM{
		stages: map[string]map[string][]string{arnA: {"va": {"AWSCURRENT"}}, "denied": {"vd": {"AWSCURRENT"}}},
		deny:   map[string]bool{"denied": true},
	}
	reqs := []Request{
		{Name: "OK", Ref: mustRef(t, "/ok")},
		{Name: "DENIED", Ref: mustRef(t, "/denied")},
		{Name: "GONE", Ref: mustRef(t, "/gone")},
		{Name: "OPT_GONE", Ref: mustRef(t, "/optgone"), Optional: true},
		{Name: "SAME", Ref: mustRef(t, "/same")},
		{Name: "S_GONE", Ref: mustRef(t, "arn:aws:secretsmanager:us-east-1:111122223333:secret:gone")},
		{Name: "S_DENIED", Ref: mustRef(t, "/aws/reference/secretsmanager/denied")},
		{Name: "S_NO_STAGE", Ref: mustRef(t, arnA+"::AWSPENDING:")},
		{Name: "S_OK", Ref: mustRef(t, arnA+":k::")},
	}
	have := map[string]Result{}
	for _, r := range reqs {
		have[r.Name] = Result{Version: "1"}
	}
	have["S_OK"] = Result{Version: "va"}
	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east}, sm: sm})
	changed, err := f.Poll(context.Background(), reqs, have)
	if want := []string{"OK", "OPT_GONE"}; !slices.Equal(changed, want) {
		t.Errorf("changed = %q, want %q", changed, want)
	}
	want := []string{
		"DENIED AccessDeniedException GetParameters",
		"GONE ParameterNotFound GetParameters",
		"S_GONE ResourceNotFoundException DescribeSecret",
		"S_DENIED AccessDeniedException DescribeSecret",
		"S_NO_STAGE ResourceNotFoundException DescribeSecret",
	}
	if got := joined(t, err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fe := e.(*Error)
		if fe.Class() != Permanent {
			t.Errorf("%s: class %s", fe.Name, fe.Class())
		}
		if fe.Name == "S_DENIED" && !strings.Contains(fe.Hint(), "secretsmanager:DescribeSecret") {
			t.Errorf("hint for a denied DescribeSecret: %s", fe.Hint())
		}
	}
	// Denied as a whole, then one call per name, still without decryption.
	if len(east.calls) != 1+5 {
		t.Errorf("GetParameters calls = %v, want 1 batch then 5 alone", east.calls)
	}
}

func TestPollWithoutAnswer(t *testing.T) {
	// What a call that never ran (ctx cancelled) leaves behind.
	f := newFetcher(t, &fakes{})
	for _, ref := range []string{"/a", arnA} {
		r := Request{Name: "X", Ref: mustRef(t, ref)}
		_, err := f.newCall([]Request{r}, false).version(r)
		if e, ok := err.(*Error); !ok || e.Code != "Timeout" || e.Class() != Transient {
			t.Errorf("%s: %v", ref, err)
		}
	}
}

func TestFetchStoresReferenceVersionID(t *testing.T) {
	ref := func(name, src string) ssmtypes.Parameter {
		p := param(smReferencePrefix+name, "value", 0, "", "arn:aws:secretsmanager:us-east-1:111122223333:secret:"+name+"-AbCdEf")
		p.SourceResult = aws.String(src)
		return p
	}
	east := &fakeSSM{decrypt: true, params: map[string]ssmtypes.Parameter{
		// As captured from AWS, and as AWS's user guide shows it.
		smReferencePrefix + "camel":  ref("camel", `{"ARN":"arn","name":"camel","versionId":"vid-camel","secretString":"value","versionStages":["AWSCURRENT"],"createdDate":"Oct 14, 2021, 10:18:47 AM"}`),
		smReferencePrefix + "pascal": ref("pascal", `{"CreatedDate":1.523926967554E9,"Name":"pascal","VersionId":"vid-pascal","SecretString":"value","VersionStages":["AWSCURRENT"],"ARN":"arn"}`),
		smReferencePrefix + "none":   ref("none", ""),
	}}
	f := newFetcher(t, &fakes{ssm: map[string]*fakeSSM{"us-east-1": east}})
	reqs := []Request{
		{Name: "CAMEL", Ref: mustRef(t, smReferencePrefix+"camel")},
		{Name: "PASCAL", Ref: mustRef(t, smReferencePrefix+"pascal")},
		{Name: "NONE", Ref: mustRef(t, smReferencePrefix+"none")},
	}
	out, err := f.Fetch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"CAMEL": "vid-camel", "PASCAL": "vid-pascal", "NONE": ""} {
		if got := out.Values[name].Version; got != want {
			t.Errorf("%s: version %q, want %q", name, got, want)
		}
	}
}

func TestSourceVersionID(t *testing.T) {
	tests := []struct{ src, want string }{
		{`{"versionId":"a"}`, "a"},
		{`{"VersionId":"b"}`, "b"},
		{`{"versionId":7}`, ""},
		{`not json`, ""},
		{``, ""},
		{`{"secretString":"s"}`, ""},
	}
	for _, tt := range tests {
		if got := sourceVersionID(tt.src); got != tt.want {
			t.Errorf("sourceVersionID(%s) = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestAttemptOutcome(t *testing.T) {
	status := func(code int, err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: err}
	}
	api := func(code string) error { return &smithy.GenericAPIError{Code: code} }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"ok", nil, OutcomeSuccess},
		{"throttling code", status(400, api("ThrottlingException")), OutcomeThrottled},
		{"other throttling code", status(400, api("TooManyRequestsException")), OutcomeThrottled},
		{"unmodeled 429", status(429, errors.New("x")), OutcomeThrottled},
		{"denied", status(400, api("AccessDeniedException")), OutcomeClientError},
		{"not found", status(400, api("ParameterNotFound")), OutcomeClientError},
		{"internal", status(500, api("InternalServerError")), OutcomeServerError},
		{"unavailable", status(503, api("ServiceUnavailable")), OutcomeServerError},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, OutcomeNetworkError},
		{"deadline", context.DeadlineExceeded, OutcomeNetworkError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := attemptOutcome(tt.err); got != tt.want {
				t.Errorf("attemptOutcome(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
