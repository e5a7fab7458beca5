// Command devaws is a local stand-in for AWS, for trying the agent without an
// AWS account: it runs the kumo emulator in-process, seeds example parameters
// and secrets, and serves the ECS container credentials endpoint on loopback,
// so the agent finds credentials exactly as it does in a task.
//
//	devaws [-demo-config FILE] [-listen ADDR] [-creds-listen ADDR] [-token T] [-- COMMAND ARGS...]
//
// With a command, devaws runs it with the environment of a task pointed at the
// emulator and exits with its exit code. Without one, it prints that
// environment as shell exports and serves until interrupted.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/sivchari/kumo"
)

// kumo v0.33.1 keeps one region and this account for every resource.
const region = "us-east-1"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devaws:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("devaws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demoConfig := fs.String("demo-config", "", "write an agent config for the seeded secrets to `FILE`")
	listen := fs.String("listen", "", "also serve the AWS endpoint on `ADDR` (e.g. 0.0.0.0:4566, for other containers); default: a random loopback port only")
	credsListen := fs.String("creds-listen", "127.0.0.1:0", "serve the ECS credentials endpoint on `ADDR` (the SDK accepts only loopback hosts)")
	token := fs.String("token", "", "the credentials endpoint's authorization `TOKEN` (default: random)")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}

	emu := kumo.NewServer()
	defer emu.Close()

	arns, err := seed(ctx, emu.URL)
	if err != nil {
		return 1, fmt.Errorf("seeding the emulator: %w", err)
	}
	// Only now open the addresses others use: an open port means the
	// seeded values are there.
	creds, err := serveCredentials(*credsListen, *token)
	if err != nil {
		return 1, err
	}
	defer creds.close()
	endpoint := emu.URL
	if *listen != "" {
		// kumo's own server listens on a random loopback port only; proxy
		// a fixed address to it so other containers can reach it.
		if endpoint, err = serveProxy(*listen, emu.URL); err != nil {
			return 1, err
		}
	}
	if *demoConfig != "" {
		if err := writeDemoConfig(*demoConfig, arns); err != nil {
			return 1, err
		}
	}
	env := []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_REGION=" + region,
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + creds.url,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=" + creds.token,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if fs.NArg() == 0 {
		for _, kv := range env {
			fmt.Fprintf(stdout, "export %s\n", kv)
		}
		fmt.Fprintln(stderr, "devaws: serving; interrupt to stop")
		<-ctx.Done()
		return 0, nil
	}
	cmd := exec.CommandContext(ctx, fs.Arg(0), fs.Args()[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

type credsServer struct {
	url, token string
	srv        *http.Server
}

func (c *credsServer) close() { _ = c.srv.Close() }

// serveProxy serves a reverse proxy to target on addr and returns the URL
// to use from this host.
func serveProxy(addr, target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(u), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "http://127.0.0.1:" + port, nil
}

// serveCredentials serves the ECS container credentials endpoint on addr. The
// keys are random: kumo does not check signatures, and the agent must not care.
func serveCredentials(addr, token string) (*credsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if token == "" {
		token = randomHex(16)
	}
	c := &credsServer{token: token}
	c.url = "http://" + ln.Addr().String() + "/v2/credentials/devaws"
	key, secretKey, session := "ASIA"+randomHex(8), randomHex(20), randomHex(32)
	c.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != c.token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": key, "SecretAccessKey": secretKey, "Token": session,
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"RoleArn":    "arn:aws:iam::000000000000:role/devaws-task-role",
		})
	})}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// Example values. They are made up, and chosen to show that quotes, $,
// backslashes and newlines survive every output format.
var (
	parameters = []struct {
		name, value string
		secure      bool
	}{
		{"/demo/db/username", "app", false},
		{"/demo/db/password", "pa'ss $HOME \\n\"word\"", true},
		{"demo-feature-flag", "on", false},
	}
	appSecret = `{"username":"app","password":"hunter2-demo","port":5432,"replicas":["a","b"]}`
	tlsKey    = []byte{0x00, 0x01, 0xfe, 0xff, 'k', 'e', 'y'}
)

type seeded struct{ app, tls string }

func seed(ctx context.Context, endpoint string) (seeded, error) {
	// Seeding is devaws's own job, not the agent's: static keys are fine here.
	cfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("devaws", "devaws", ""),
		BaseEndpoint: aws.String(endpoint),
	}
	ssmc := ssm.NewFromConfig(cfg)
	for _, p := range parameters {
		typ := ssmtypes.ParameterTypeString
		if p.secure {
			typ = ssmtypes.ParameterTypeSecureString
		}
		if _, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(p.name), Value: aws.String(p.value), Type: typ, Overwrite: aws.Bool(true),
		}); err != nil {
			return seeded{}, err
		}
	}
	smc := secretsmanager.NewFromConfig(cfg)
	app, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("demo/app"), SecretString: aws.String(appSecret)})
	if err != nil {
		return seeded{}, err
	}
	tls, err := smc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("demo/tls-key"), SecretBinary: tlsKey})
	if err != nil {
		return seeded{}, err
	}
	return seeded{app: aws.ToString(app.ARN), tls: aws.ToString(tls.ARN)}, nil
}

func writeDemoConfig(path string, s seeded) error {
	cfg := map[string]any{
		"secrets": []map[string]any{
			{"name": "DB_USERNAME", "valueFrom": "/demo/db/username"},
			{"name": "DB_PASSWORD", "valueFrom": "/demo/db/password", "mode": "0400"},
			{"name": "FEATURE_FLAG", "valueFrom": "demo-feature-flag"},
			{"name": "APP", "valueFrom": s.app, "expand": true},
			{"name": "APP_PASSWORD", "valueFrom": s.app + ":password::", "file": "app/password"},
			{"name": "TLS_KEY", "valueFrom": s.tls},
		},
		"envFile":  "secrets.env",
		"jsonFile": "secrets.json",
		"templates": []map[string]any{{
			"template":    "postgres://{{ secret \"DB_USERNAME\" }}:{{ secret \"APP_PASSWORD\" }}@db:{{ key \"APP\" \"port\" }}/app\n",
			"destination": "db.url",
		}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
