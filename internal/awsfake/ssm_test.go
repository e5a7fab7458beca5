package awsfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

const paramARNPrefix = "arn:aws:ssm:" + region + ":" + awsfake.Account + ":parameter"

func TestGetParameters(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "/app/db/password", "old", true)
	if v := f.PutParameter(region, "/app/db/password", "new", true); v != 2 {
		t.Fatalf("second PutParameter version = %d, want 2", v)
	}
	f.LabelParameter(region, "/app/db/password", 1, "prev")
	f.PutParameter(region, "plain", "p", false)
	f.PutParameter("eu-west-1", "/elsewhere", "x", false)
	client := ssm.NewFromConfig(cfg)

	tests := []struct {
		name         string
		ref          string
		wantName     string
		wantValue    string
		wantVersion  int64
		wantSelector string
		wantType     types.ParameterType
		wantARN      string
	}{
		{"name", "/app/db/password", "/app/db/password", "new", 2, "", types.ParameterTypeSecureString, paramARNPrefix + "/app/db/password"},
		{"version selector", "/app/db/password:1", "/app/db/password", "old", 1, ":1", types.ParameterTypeSecureString, paramARNPrefix + "/app/db/password"},
		{"label selector", "/app/db/password:prev", "/app/db/password", "old", 1, ":prev", types.ParameterTypeSecureString, paramARNPrefix + "/app/db/password"},
		{"arn", paramARNPrefix + "/app/db/password", "/app/db/password", "new", 2, "", types.ParameterTypeSecureString, paramARNPrefix + "/app/db/password"},
		{"arn with selector", paramARNPrefix + "/app/db/password:1", "/app/db/password", "old", 1, ":1", types.ParameterTypeSecureString, paramARNPrefix + "/app/db/password"},
		{"flat name", "plain", "plain", "p", 1, "", types.ParameterTypeString, paramARNPrefix + "/plain"},
		{"flat name arn", paramARNPrefix + "/plain", "plain", "p", 1, "", types.ParameterTypeString, paramARNPrefix + "/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{tt.ref}, WithDecryption: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Parameters) != 1 || len(out.InvalidParameters) != 0 {
				t.Fatalf("got %d parameters, invalid %q; want 1, none", len(out.Parameters), out.InvalidParameters)
			}
			p := out.Parameters[0]
			if aws.ToString(p.Name) != tt.wantName || aws.ToString(p.Value) != tt.wantValue || p.Version != tt.wantVersion ||
				aws.ToString(p.Selector) != tt.wantSelector || p.Type != tt.wantType || aws.ToString(p.ARN) != tt.wantARN ||
				aws.ToString(p.DataType) != "text" || p.LastModifiedDate == nil || p.LastModifiedDate.IsZero() {
				t.Errorf("parameter = %s", dumpParam(p))
			}
		})
	}

	t.Run("invalid names", func(t *testing.T) {
		missing := []string{"/nope", "/app/db/password:9", "/app/db/password:nolabel",
			"arn:aws:ssm:eu-west-1:" + awsfake.Account + ":parameter/elsewhere", "/elsewhere", "arn:aws:ssm:" + region + ":999999999999:parameter/plain"}
		out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: append([]string{"plain"}, missing...)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Parameters) != 1 || !slices.Equal(out.InvalidParameters, missing) {
			t.Errorf("got %d parameters, invalid %q; want 1, %q", len(out.Parameters), out.InvalidParameters, missing)
		}
	})

	t.Run("secure string without decryption", func(t *testing.T) {
		get := func() string {
			out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/app/db/password"}})
			if err != nil {
				t.Fatal(err)
			}
			return aws.ToString(out.Parameters[0].Value)
		}
		first := get()
		if first == "" || first == "new" || first != get() {
			t.Errorf("ciphertext %q: want non-empty, not the plaintext, stable per version", first)
		}
		f.PutParameter(region, "/app/db/password", "newer", true)
		if get() == first {
			t.Error("ciphertext did not change with a new version")
		}
	})

	t.Run("too many names", func(t *testing.T) {
		names := make([]string, 11)
		for i := range names {
			names[i] = fmt.Sprintf("/p%d", i)
		}
		_, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: names})
		if got := errorCode(err); got != "ValidationException" {
			t.Errorf("error code = %q (%v), want ValidationException", got, err)
		}
	})

	t.Run("other region", func(t *testing.T) {
		out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/elsewhere"}},
			func(o *ssm.Options) { o.Region = "eu-west-1" })
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Parameters) != 1 || aws.ToString(out.Parameters[0].ARN) != "arn:aws:ssm:eu-west-1:"+awsfake.Account+":parameter/elsewhere" {
			t.Errorf("eu-west-1 parameters = %+v, invalid %q", out.Parameters, out.InvalidParameters)
		}
	})
}

func TestParameterAccessDenied(t *testing.T) {
	f, cfg := setup(t)
	f.PutParameter(region, "/ok", "1", false)
	f.PutParameter(region, "/secret", "2", false)
	f.DenyAccess("GetParameters", "/secret")
	client := ssm.NewFromConfig(cfg)

	_, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/ok", paramARNPrefix + "/secret:1"}})
	if got := errorCode(err); got != "AccessDeniedException" {
		t.Fatalf("error code = %q (%v), want AccessDeniedException for the whole call", got, err)
	}
	if !strings.Contains(err.Error(), "is not authorized to perform: ssm:GetParameters on resource: "+paramARNPrefix+"/secret") {
		t.Errorf("message = %v", err)
	}
	if _, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/ok"}}); err != nil {
		t.Errorf("allowed name: %v", err)
	}
}

func TestParameterReference(t *testing.T) {
	f, cfg := setup(t)
	arn := f.PutSecretString(region, "app/db", "v1")
	f.PutSecretString(region, "app/db", "v2")
	client := ssm.NewFromConfig(cfg)

	for _, id := range []string{"app/db", arn} {
		ref := "/aws/reference/secretsmanager/" + id
		out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{ref}, WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Parameters) != 1 {
			t.Fatalf("%s: invalid %q", ref, out.InvalidParameters)
		}
		p := out.Parameters[0]
		if aws.ToString(p.Value) != "v2" || p.Type != types.ParameterTypeSecureString || aws.ToString(p.Name) != ref ||
			aws.ToString(p.ARN) != arn || p.Version != 0 || p.DataType != nil {
			t.Errorf("%s: parameter = %s", ref, dumpParam(p))
		}
		// The shape captured from AWS: camelCase keys but ARN, the value
		// included, createdDate as text.
		var src map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(p.SourceResult)), &src); err != nil {
			t.Fatalf("%s: SourceResult: %v", ref, err)
		}
		created, _ := src["createdDate"].(string)
		if src["ARN"] != arn || src["name"] != "app/db" || src["versionId"] != f.SecretVersionID(region, "app/db", "AWSCURRENT") ||
			src["secretString"] != "v2" || fmt.Sprint(src["versionStages"]) != "[AWSCURRENT]" || len(src) != 6 {
			t.Errorf("%s: SourceResult = %s", ref, aws.ToString(p.SourceResult))
		}
		if _, err := time.Parse("Jan 2, 2006, 3:04:05 PM", created); err != nil {
			t.Errorf("%s: createdDate: %v", ref, err)
		}
	}

	out, err := client.GetParameters(context.Background(), &ssm.GetParametersInput{
		Names: []string{"/aws/reference/secretsmanager/app/db:AWSPREVIOUS", "/aws/reference/secretsmanager/missing"}, WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Parameters) != 1 || aws.ToString(out.Parameters[0].Value) != "v1" ||
		!slices.Equal(out.InvalidParameters, []string{"/aws/reference/secretsmanager/missing"}) {
		t.Errorf("parameters %+v, invalid %q", out.Parameters, out.InvalidParameters)
	}

	_, err = client.GetParameters(context.Background(), &ssm.GetParametersInput{Names: []string{"/aws/reference/secretsmanager/app/db"}})
	if got := errorCode(err); got != "ValidationException" {
		t.Errorf("without decryption: error code = %q (%v), want ValidationException", got, err)
	}
}

func TestPutAndDeleteParameter(t *testing.T) {
	f, cfg := setup(t)
	client := ssm.NewFromConfig(cfg)
	ctx := context.Background()
	put := func(overwrite bool) (*ssm.PutParameterOutput, error) {
		return client.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String("/lock"), Value: aws.String("owner"), Type: types.ParameterTypeString, Overwrite: aws.Bool(overwrite)})
	}
	if out, err := put(false); err != nil || out.Version != 1 {
		t.Fatalf("create: %v, %+v", err, out)
	}
	var exists *types.ParameterAlreadyExists
	if _, err := put(false); !errors.As(err, &exists) {
		t.Fatalf("second create: err = %v, want ParameterAlreadyExists", err)
	}
	if out, err := put(true); err != nil || out.Version != 2 {
		t.Fatalf("overwrite: %v, %+v", err, out)
	}
	if _, err := client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/lock")}); err != nil {
		t.Fatal(err)
	}
	var notFound *types.ParameterNotFound
	if _, err := client.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/lock")}); !errors.As(err, &notFound) {
		t.Fatalf("second delete: err = %v, want ParameterNotFound", err)
	}
	if _, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/lock")}); !errors.As(err, &notFound) {
		t.Fatalf("get after delete: err = %v, want ParameterNotFound", err)
	}
	if f.Calls("PutParameter") != 3 || f.Calls("DeleteParameter") != 2 {
		t.Errorf("calls: put %d, delete %d", f.Calls("PutParameter"), f.Calls("DeleteParameter"))
	}
}

func dumpParam(p types.Parameter) string {
	return fmt.Sprintf("{Name:%q Value:%q Version:%d Selector:%q Type:%s ARN:%q DataType:%q LastModified:%v SourceResult:%q}",
		aws.ToString(p.Name), aws.ToString(p.Value), p.Version, aws.ToString(p.Selector), p.Type, aws.ToString(p.ARN),
		aws.ToString(p.DataType), p.LastModifiedDate, aws.ToString(p.SourceResult))
}
