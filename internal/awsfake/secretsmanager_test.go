package awsfake_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

func TestGetSecretValue(t *testing.T) {
	f, cfg := setup(t)
	arn := f.PutSecretString(region, "app/db", "v1")
	if again := f.PutSecretString(region, "app/db", "v2"); again != arn {
		t.Fatalf("ARN changed on a new version: %q, %q", arn, again)
	}
	if !regexp.MustCompile(`^arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-[A-Za-z0-9]{6}$`).MatchString(arn) {
		t.Fatalf("ARN = %q", arn)
	}
	binARN := f.PutSecretBinary(region, "app/key", []byte{0, 1, 2, 0xff})
	previous := f.SecretVersionID(region, "app/db", "AWSPREVIOUS")
	current := f.SecretVersionID(region, "app/db", "AWSCURRENT")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(current) || previous == current {
		t.Fatalf("version ids: current %q, previous %q", current, previous)
	}
	client := secretsmanager.NewFromConfig(cfg)

	tests := []struct {
		name       string
		in         secretsmanager.GetSecretValueInput
		wantValue  string
		wantID     string
		wantStages []string
	}{
		{"name", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}, "v2", current, []string{"AWSCURRENT"}},
		{"arn", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}, "v2", current, []string{"AWSCURRENT"}},
		{"partial arn", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-7])}, "v2", current, []string{"AWSCURRENT"}},
		{"stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPREVIOUS")}, "v1", previous, []string{"AWSPREVIOUS"}},
		{"version id", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(previous)}, "v1", previous, []string{"AWSPREVIOUS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := client.GetSecretValue(context.Background(), &tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.SecretString) != tt.wantValue || aws.ToString(out.VersionId) != tt.wantID ||
				!slices.Equal(out.VersionStages, tt.wantStages) || aws.ToString(out.ARN) != arn ||
				aws.ToString(out.Name) != "app/db" || out.CreatedDate == nil || out.SecretBinary != nil {
				t.Errorf("output = %+v", out)
			}
		})
	}

	t.Run("binary", func(t *testing.T) {
		out, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/key")})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.SecretBinary, []byte{0, 1, 2, 0xff}) || out.SecretString != nil || aws.ToString(out.ARN) != binARN {
			t.Errorf("output = %+v", out)
		}
	})

	notFound := []struct {
		name    string
		in      secretsmanager.GetSecretValueInput
		message string
	}{
		{"missing secret", secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")}, "Secrets Manager can't find the specified secret."},
		{"wrong suffix", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-6] + "zzzzzz")}, "Secrets Manager can't find the specified secret."},
		{"other region arn", secretsmanager.GetSecretValueInput{SecretId: aws.String(strings.Replace(arn, region, "eu-west-1", 1))}, "Secrets Manager can't find the specified secret."},
		{"missing stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPENDING")}, "staging label: AWSPENDING"},
		{"missing version", secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String("00000000-0000-4000-8000-000000000000")}, "VersionId: 00000000-0000-4000-8000-000000000000"},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.GetSecretValue(context.Background(), &tt.in)
			var rnf *types.ResourceNotFoundException
			if !errors.As(err, &rnf) || !strings.Contains(rnf.ErrorMessage(), tt.message) {
				t.Errorf("err = %v, want ResourceNotFoundException mentioning %q", err, tt.message)
			}
		})
	}
}

func TestDescribeSecretAfterRotation(t *testing.T) {
	f, cfg := setup(t)
	arn := f.PutSecretString(region, "rot", "v1")
	first := f.SecretVersionID(region, "rot", "AWSCURRENT")
	f.PutSecretString(region, "rot", "v2")
	f.PutSecretString(region, "rot", "v3")
	client := secretsmanager.NewFromConfig(cfg)

	out, err := client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	current, previous := f.SecretVersionID(region, "rot", "AWSCURRENT"), f.SecretVersionID(region, "rot", "AWSPREVIOUS")
	want := map[string][]string{current: {"AWSCURRENT"}, previous: {"AWSPREVIOUS"}}
	if len(out.VersionIdsToStages) != 2 || !slices.Equal(out.VersionIdsToStages[current], want[current]) ||
		!slices.Equal(out.VersionIdsToStages[previous], want[previous]) {
		t.Errorf("VersionIdsToStages = %v, want %v", out.VersionIdsToStages, want)
	}
	if aws.ToString(out.Name) != "rot" || aws.ToString(out.ARN) != arn || out.LastChangedDate == nil {
		t.Errorf("output = %+v", out)
	}

	// A deprecated version (no stage left) can still be read by id.
	v, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("rot"), VersionId: aws.String(first)})
	if err != nil || aws.ToString(v.SecretString) != "v1" || len(v.VersionStages) != 0 {
		t.Errorf("first version: %v, %+v", err, v)
	}
}

func TestSecretAccessDenied(t *testing.T) {
	f, cfg := setup(t)
	arn := f.PutSecretString(region, "locked", "x")
	f.PutSecretString(region, "open", "y")
	f.DenyAccess("GetSecretValue", arn)
	client := secretsmanager.NewFromConfig(cfg)

	_, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("locked")})
	if got := errorCode(err); got != "AccessDeniedException" {
		t.Fatalf("error code = %q (%v), want AccessDeniedException", got, err)
	}
	if _, err := client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("locked")}); err != nil {
		t.Errorf("DescribeSecret is not denied: %v", err)
	}
	if _, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("open")}); err != nil {
		t.Errorf("open secret: %v", err)
	}
}
