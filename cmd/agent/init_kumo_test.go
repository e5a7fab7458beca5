package main

// The same init job against kumo, an AWS emulator nobody here wrote, so
// that our own fake's idea of the wire protocol is not the only one tested.
// kumo v0.33.1 has one region and account (us-east-1, 000000000000) and no
// ARN or selector lookups in Parameter Store; those are covered by the fake.
// kumo runs inside cmd/devaws, the README's local emulator, in a process of
// its own.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// startDevaws runs cmd/devaws (kumo plus an ECS credentials endpoint) in
// its own process and returns the task environment it prints.
func startDevaws(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command(devawsBin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var env []string
	sc := bufio.NewScanner(out)
	for len(env) < 5 && sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			env = append(env, kv)
		}
	}
	if len(env) < 5 {
		t.Fatalf("devaws printed %d variables: %v", len(env), env)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return env
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func TestInitAgainstKumo(t *testing.T) {
	env := startDevaws(t)
	ctx := context.Background()
	// Seeding is the test's job, not the agent's, so static keys are fine here.
	cfg := aws.Config{Region: region, BaseEndpoint: aws.String(envValue(env, "AWS_ENDPOINT_URL")),
		Credentials: credentials.NewStaticCredentialsProvider("seed", "seed", "")}
	ssmc, smc := ssm.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)

	// Names unique to this test, beside devaws's own demo data.
	prefix := fmt.Sprintf("/kumo-%d", time.Now().UnixNano())
	var seeded []string
	want := map[string]string{}
	var secrets []secretCfg
	for i := range 50 {
		name, path := fmt.Sprintf("P%02d", i), fmt.Sprintf("%s/p%02d", prefix, i)
		v := fmt.Sprintf("kumo-param-%02d-'\"$`\\", i)
		typ := ssmtypes.ParameterTypeSecureString
		if i%3 == 0 {
			typ = ssmtypes.ParameterTypeString
		}
		if _, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(path), Value: aws.String(v), Type: typ}); err != nil {
			t.Fatal(err)
		}
		seeded, want[name] = append(seeded, v), v
		secrets = append(secrets, secretCfg{"name": name, "valueFrom": path})
	}
	for i := range 20 {
		name := fmt.Sprintf("S%02d", i)
		user, pass := fmt.Sprintf("kumo-user-%02d", i), fmt.Sprintf("kumo-pass-%02d\nline2", i)
		v := fmt.Sprintf(`{"user":%q,"password":%q,"n":%d}`, user, pass, 1000000+i)
		out, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix[1:] + "/" + name), SecretString: aws.String(v)})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.ARN)
		seeded = append(seeded, user, pass, v)
		if i%2 == 0 {
			want[name] = v
			secrets = append(secrets, secretCfg{"name": name, "valueFrom": arn})
		} else {
			want[name+"_PASS"], want[name+"_N"] = pass, fmt.Sprint(1000000+i)
			secrets = append(secrets,
				secretCfg{"name": name + "_PASS", "valueFrom": arn + ":password::"},
				secretCfg{"name": name + "_N", "valueFrom": arn + ":n:AWSCURRENT:"})
		}
	}

	out := filepath.Join(t.TempDir(), "secrets")
	conf, _ := json.Marshal(secretCfg{"secrets": secrets, "envFile": "all.env"})
	r := runAgent(t, append(env, "AGENT_CONFIG="+string(conf)), seeded, "init", "--output-dir", out)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for name, v := range want {
		assertFile(t, filepath.Join(out, name), v, 0o444)
	}
	if got, wantN := len(listDir(t, out)), len(want)+1; got != wantN {
		t.Errorf("%d files, want %d", got, wantN)
	}
}
