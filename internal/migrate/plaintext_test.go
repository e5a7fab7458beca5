package migrate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
)

// The orders task definition's plaintext values.
var ordersValues = []string{"Tr0ub4dor&3-orders", "sk_live_51HxQ2vKp9mTz7RfA0c3Wd8Y"}

func TestFindPlaintext(t *testing.T) {
	td := parse(t, readTestdata(t, "orders-api.describe.json"))
	moves, err := FindPlaintext(td, "/orders/prod")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range moves {
		got = append(got, m.Container+" "+m.Env+" "+m.Rule+" "+m.Parameter)
	}
	want := []string{
		"orders-api DB_PASSWORD ESA101 /orders/prod/DB_PASSWORD",
		"orders-api STRIPE_API_KEY ESA102 /orders/prod/STRIPE_API_KEY",
	}
	if !slices.Equal(got, want) {
		t.Errorf("moves\n got %q\nwant %q", got, want)
	}
	if moves[0].value != ordersValues[0] || moves[1].value != ordersValues[1] {
		t.Error("moves do not carry the values to store")
	}

	res, err := Migrate(td, Options{Pattern: Sidecar, Image: image})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(res.TaskDef)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ordersValues {
		if strings.Contains(string(out), v) {
			t.Errorf("the migrated task definition still holds a plaintext value")
		}
	}
	const conf = `{"secrets":[{"name":"JWT_SIGNING_KEY","valueFrom":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/jwt-a1B2c3:signing::"},{"name":"REDIS_AUTH","valueFrom":"/orders/prod/redis-auth"},{"name":"DB_PASSWORD","valueFrom":"/orders/prod/DB_PASSWORD"},{"name":"STRIPE_API_KEY","valueFrom":"/orders/prod/STRIPE_API_KEY"}]}`
	ctd := check(t, out)
	if got := agentConfigOf(t, container(t, ctd, "secrets")); got != conf {
		t.Errorf("AGENT_CONFIG\n got %s\nwant %s", got, conf)
	}
	var env []string
	for _, e := range container(t, ctd, "orders-api").Environment {
		env = append(env, aws.ToString(e.Name))
	}
	if !slices.Equal(env, []string{"NODE_ENV", "DB_HOST"}) {
		t.Errorf("app environment %q, want NODE_ENV, DB_HOST", env)
	}
	// The result lints clean, plaintext included.
	for _, f := range lintAll(t, out) {
		t.Errorf("lint: %s", f)
	}
}

// lintAll is every lint finding on out, of any severity.
func lintAll(t *testing.T, out []byte) []string {
	t.Helper()
	var all []string
	for _, f := range lint.Check("out.json", parse(t, out)) {
		all = append(all, f.RuleID+" "+f.Container+": "+f.Message)
	}
	return all
}

func TestFindPlaintextRefuses(t *testing.T) {
	cases := []struct{ name, in, prefix, want string }{
		{"relative prefix", `{"family": "f", "containerDefinitions": []}`, "orders", `--move-plaintext "orders": want a Parameter Store path such as /myapp/prod (a leading /, no trailing /)`},
		{"trailing slash", `{"family": "f", "containerDefinitions": []}`, "/orders/", `--move-plaintext "/orders/": want a Parameter Store path such as /myapp/prod (a leading /, no trailing /)`},
		{"reserved prefix", `{"family": "f", "containerDefinitions": []}`, "/aws/x", `--move-plaintext "/aws/x": Parameter Store rejects names starting with aws or ssm`},
		{"one name two values", `{"family": "f", "containerDefinitions": [
			{"name": "a", "image": "a:1", "environment": [{"name": "DB_PASSWORD", "value": "one-Secret-1"}]},
			{"name": "b", "image": "b:1", "environment": [{"name": "DB_PASSWORD", "value": "two-Secret-2"}]}]}`, "/p",
			`environment variable DB_PASSWORD has different values in containers "a" and "b": both would go to parameter /p/DB_PASSWORD; rename one first`},
		{"also in secrets", `{"family": "f", "containerDefinitions": [
			{"name": "a", "image": "a:1", "environment": [{"name": "DB_PASSWORD", "value": "one-Secret-1"}], "secrets": [{"name": "DB_PASSWORD", "valueFrom": "/db"}]}]}`, "/p",
			`container "a" sets DB_PASSWORD both in environment and in secrets: drop one first`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FindPlaintext(parse(t, []byte(tc.in)), tc.prefix)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error\n got %v\nwant %s", err, tc.want)
			}
			for _, v := range []string{"one-Secret-1", "two-Secret-2"} {
				if err != nil && strings.Contains(err.Error(), v) {
					t.Error("the error holds a value")
				}
			}
		})
	}
}

func TestFindPlaintextSharedValueOneParameter(t *testing.T) {
	in := `{"family": "f", "containerDefinitions": [
		{"name": "a", "image": "a:1", "environment": [{"name": "DB_PASSWORD", "value": "same-Secret-1"}]},
		{"name": "b", "image": "b:1", "environment": [{"name": "DB_PASSWORD", "value": "same-Secret-1"}, {"name": "MODE", "value": "x"}]}]}`
	td := parse(t, []byte(in))
	moves, err := FindPlaintext(td, "/p")
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 1 || moves[0].Parameter != "/p/DB_PASSWORD" {
		t.Fatalf("moves %+v, want one /p/DB_PASSWORD", moves)
	}
	for _, c := range td.Raw["containerDefinitions"].([]any) {
		s := c.(map[string]any)["secrets"].([]any)
		if len(s) != 1 || s[0].(map[string]any)["valueFrom"] != "/p/DB_PASSWORD" {
			t.Errorf("container %v secrets %v", c.(map[string]any)["name"], s)
		}
	}
}

// fakeSSM stands in for Parameter Store; an unexpected call fails the test.
type fakeSSM struct {
	t      *testing.T
	params map[string]ssmtypes.Parameter
	puts   []ssm.PutParameterInput
	putErr error
	gets   int
}

func (f *fakeSSM) PutParameter(_ context.Context, in *ssm.PutParameterInput, _ ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	f.puts = append(f.puts, *in)
	if f.putErr != nil {
		return nil, f.putErr
	}
	name := aws.ToString(in.Name)
	if _, ok := f.params[name]; ok {
		return nil, &ssmtypes.ParameterAlreadyExists{Message: aws.String("The parameter already exists.")}
	}
	f.params[name] = ssmtypes.Parameter{Name: in.Name, Value: in.Value, Type: in.Type}
	return &ssm.PutParameterOutput{Version: 1}, nil
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.gets++
	if !aws.ToBool(in.WithDecryption) {
		f.t.Error("GetParameter without decryption cannot compare values")
	}
	p, ok := f.params[aws.ToString(in.Name)]
	if !ok {
		f.t.Errorf("unexpected GetParameter %s", aws.ToString(in.Name))
		return nil, &ssmtypes.ParameterNotFound{}
	}
	return &ssm.GetParameterOutput{Parameter: &p}, nil
}

func ordersMoves(t *testing.T) []Move {
	t.Helper()
	moves, err := FindPlaintext(parse(t, readTestdata(t, "orders-api.describe.json")), "/orders/prod")
	if err != nil {
		t.Fatal(err)
	}
	return moves
}

func TestStoreSecureString(t *testing.T) {
	f := &fakeSSM{t: t, params: map[string]ssmtypes.Parameter{}}
	created, err := Store(context.Background(), f, ordersMoves(t), "alias/orders")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/orders/prod/DB_PASSWORD", "/orders/prod/STRIPE_API_KEY"}; !slices.Equal(created, want) {
		t.Errorf("created %q, want %q", created, want)
	}
	for i, p := range f.puts {
		if p.Type != ssmtypes.ParameterTypeSecureString || aws.ToString(p.KeyId) != "alias/orders" || aws.ToBool(p.Overwrite) || aws.ToString(p.Value) != ordersValues[i] {
			t.Errorf("put %s: type %s key %q overwrite %v, right value %v", aws.ToString(p.Name), p.Type, aws.ToString(p.KeyId), aws.ToBool(p.Overwrite), aws.ToString(p.Value) == ordersValues[i])
		}
		for _, v := range ordersValues {
			if strings.Contains(aws.ToString(p.Description), v) {
				t.Error("a description holds a value")
			}
		}
	}

	// A rerun finds them with the same values: nothing created, no error.
	f.puts = nil
	created, err = Store(context.Background(), f, ordersMoves(t), "alias/orders")
	if err != nil || len(created) != 0 || f.gets != 2 {
		t.Errorf("rerun: created %q err %v gets %d, want none, nil, 2", created, err, f.gets)
	}
}

func TestStoreNeverOverwrites(t *testing.T) {
	f := &fakeSSM{t: t, params: map[string]ssmtypes.Parameter{
		"/orders/prod/DB_PASSWORD": {Value: aws.String("someone-elses"), Type: ssmtypes.ParameterTypeSecureString},
	}}
	created, err := Store(context.Background(), f, ordersMoves(t), "")
	const want = "parameter /orders/prod/DB_PASSWORD already exists with another value or type: not overwritten; pick another --move-plaintext prefix or delete it"
	var ae *AWSError
	if !errors.As(err, &ae) || err.Error() != want || len(created) != 0 {
		t.Errorf("error %v created %q, want %s", err, created, want)
	}
	if aws.ToString(f.params["/orders/prod/DB_PASSWORD"].Value) != "someone-elses" {
		t.Error("overwritten")
	}
	if len(f.puts) != 1 || f.puts[0].KeyId != nil {
		t.Errorf("puts %d (KeyId %v), want 1 without a key", len(f.puts), f.puts[0].KeyId)
	}
}

func TestStoreErrorHidesValue(t *testing.T) {
	// A validation message that quotes the value it rejected.
	f := &fakeSSM{t: t, params: map[string]ssmtypes.Parameter{}, putErr: &smithy.GenericAPIError{
		Code: "ValidationException", Message: "Value 'Tr0ub4dor&3-orders' at 'value' failed to satisfy constraint",
	}}
	_, err := Store(context.Background(), f, ordersMoves(t), "")
	const want = `putting parameter /orders/prod/DB_PASSWORD (from DB_PASSWORD of container "orders-api"): ValidationException: Value '[value]' at 'value' failed to satisfy constraint`
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}
