package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

const region = "us-east-1"

// fixture is a fake AWS plus the values seeded into it.
type fixture struct {
	fake    *awsfake.Fake
	secrets []string // every seeded value, for the redaction scans
	out     string   // output directory
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{fake: awsfake.New(), out: filepath.Join(t.TempDir(), "secrets")}
	t.Cleanup(f.fake.Close)
	return f
}

// value makes a distinctive value and remembers it for the scans.
func (f *fixture) value(label string) string {
	v := fmt.Sprintf("sv-%s-%d-q'd\"$x\\n", label, len(f.secrets))
	f.secrets = append(f.secrets, v)
	return v
}

func (f *fixture) run(t *testing.T, config any, args ...string) result {
	t.Helper()
	env := f.fake.Env(region)
	if config != nil {
		b, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, "AGENT_CONFIG="+string(b))
	}
	return runAgent(t, env, f.secrets, append([]string{"init", "--output-dir", f.out}, args...)...)
}

type secretCfg = map[string]any

func TestInitFetchesWithExactCallCounts(t *testing.T) {
	f := newFixture(t)
	want := map[string]string{}
	var secrets []secretCfg
	for i := range 50 {
		name := fmt.Sprintf("P%02d", i)
		path := fmt.Sprintf("/app/prod/param-%02d", i)
		v := f.value(name)
		f.fake.PutParameter(region, path, v, i%2 == 0)
		want[name] = v
		secrets = append(secrets, secretCfg{"name": name, "valueFrom": path})
	}
	for i := range 20 {
		name := fmt.Sprintf("S%02d", i)
		v := f.value(name)
		arn := f.fake.PutSecretString(region, fmt.Sprintf("app/secret-%02d", i), v)
		want[name] = v
		secrets = append(secrets, secretCfg{"name": name, "valueFrom": arn})
	}
	r := f.run(t, secretCfg{"secrets": secrets})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for name, v := range want {
		assertFile(t, filepath.Join(f.out, name), v, 0o444)
	}
	if got := len(listDir(t, f.out)); got != 70 {
		t.Errorf("%d files, want 70", got)
	}
	if got := f.fake.Calls("GetParameters"); got != 5 {
		t.Errorf("GetParameters calls = %d, want 5", got)
	}
	if got := f.fake.Calls("GetSecretValue"); got != 20 {
		t.Errorf("GetSecretValue calls = %d, want 20", got)
	}
	if got := len(f.fake.CallLog()); got != 25 {
		t.Errorf("%d AWS calls in all, want 25: %v", got, f.fake.CallLog())
	}
	for _, c := range f.fake.CallLog() {
		if c.Op == "GetParameters" && !c.WithDecryption {
			t.Errorf("GetParameters without decryption: %v", c.Names)
		}
	}
	if n := f.fake.SignatureFailures(); n != 0 {
		t.Errorf("%d requests failed SigV4 verification", n)
	}
	if n := f.fake.CredentialRequests(); n != 1 {
		t.Errorf("credentials endpoint called %d times, want 1", n)
	}
	if !strings.Contains(r.stderr, `"msg":"secrets written"`) || !strings.Contains(r.stderr, `"changed":70`) {
		t.Errorf("missing summary log line:\n%s", r.stderr)
	}

	// A second run finds every file current and rewrites none.
	before, _ := os.Stat(filepath.Join(f.out, "P00"))
	r = f.run(t, secretCfg{"secrets": secrets})
	after, _ := os.Stat(filepath.Join(f.out, "P00"))
	if r.code != 0 || !strings.Contains(r.stderr, `"changed":0`) || !os.SameFile(before, after) {
		t.Errorf("second run rewrote files (exit %d):\n%s", r.code, r.stderr)
	}
}

func TestInitResolvesEveryForm(t *testing.T) {
	f := newFixture(t)
	plain := f.value("plain")
	f.fake.PutParameter(region, "dbname", plain, false)
	v1, v2 := f.value("v1"), f.value("v2")
	f.fake.PutParameter(region, "/app/versioned", v1, true)
	f.fake.PutParameter(region, "/app/versioned", v2, true)
	f.fake.LabelParameter(region, "/app/versioned", 1, "stable")
	far := f.value("far")
	f.fake.PutParameter("eu-west-1", "/shared/far", far, true)

	user, pass := f.value("user"), f.value("pass")
	jsonSecret := fmt.Sprintf(`{"username":%q,"password":%q,"port":5432,"big":1000000,"nested":{"a":"b"},"list":[1,"x"],"flag":true,"none":null}`, user, pass)
	f.secrets = append(f.secrets, jsonSecret)
	app := f.fake.PutSecretString(region, "prod/app", jsonSecret)
	old := f.value("old")
	rot := f.fake.PutSecretString(region, "prod/rotated", old)
	cur := f.value("cur")
	f.fake.PutSecretString(region, "prod/rotated", cur)
	prevID := f.fake.SecretVersionID(region, "prod/rotated", "AWSPREVIOUS")
	bin := []byte{0, 1, 2, 0xfe, 0xff, '\n'}
	binARN := f.fake.PutSecretBinary(region, "prod/cert", bin)
	via := f.value("via")
	f.fake.PutSecretString(region, "prod/via", via)

	secrets := []secretCfg{
		{"name": "PLAIN", "valueFrom": "dbname"},
		{"name": "LATEST", "valueFrom": "/app/versioned"},
		{"name": "BY_VERSION", "valueFrom": "/app/versioned:1"},
		{"name": "BY_LABEL", "valueFrom": "/app/versioned:stable"},
		{"name": "BY_ARN", "valueFrom": "arn:aws:ssm:eu-west-1:111122223333:parameter/shared/far"},
		{"name": "VIA_SSM", "valueFrom": "/aws/reference/secretsmanager/prod/via"},
		{"name": "WHOLE", "valueFrom": app},
		{"name": "USER", "valueFrom": app + ":username::", "file": "db/user", "mode": "0400"},
		{"name": "PASS", "valueFrom": app + ":password:AWSCURRENT:"},
		{"name": "PORT", "valueFrom": app + ":port::"},
		{"name": "BIG", "valueFrom": app + ":big::"},
		{"name": "NESTED", "valueFrom": app + ":nested::"},
		{"name": "APP", "valueFrom": app, "expand": true},
		{"name": "PREVIOUS", "valueFrom": rot + "::AWSPREVIOUS:"},
		{"name": "BY_ID", "valueFrom": rot + ":::" + prevID},
		{"name": "CURRENT", "valueFrom": rot},
		{"name": "CERT", "valueFrom": binARN},
		{"name": "MAYBE", "valueFrom": "/app/not-there", "optional": true},
	}
	r := f.run(t, secretCfg{"secrets": secrets, "envFile": "all.env", "jsonFile": "all.json",
		"templates": []secretCfg{{"template": `{{ secret "USER" }}:{{ key "APP" "port" }}:{{ secret "CERT" | base64 }}`, "destination": "conf/t.txt", "mode": "0440"}}})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	files := map[string]string{
		"PLAIN": plain, "LATEST": v2, "BY_VERSION": v1, "BY_LABEL": v1, "BY_ARN": far, "VIA_SSM": via,
		"WHOLE": jsonSecret, "PASS": pass, "PORT": "5432", "BIG": "1000000", "NESTED": `{"a":"b"}`,
		"APP_username": user, "APP_password": pass, "APP_port": "5432", "APP_big": "1000000",
		"APP_nested": `{"a":"b"}`, "APP_list": `[1,"x"]`, "APP_flag": "true", "APP_none": "null",
		"PREVIOUS": old, "BY_ID": old, "CURRENT": cur, "CERT": string(bin),
	}
	for name, v := range files {
		assertFile(t, filepath.Join(f.out, name), v, 0o444)
	}
	assertFile(t, filepath.Join(f.out, "db/user"), user, 0o400)
	assertFile(t, filepath.Join(f.out, "conf/t.txt"), user+":5432:"+base64.StdEncoding.EncodeToString(bin), 0o440)
	if _, err := os.Lstat(filepath.Join(f.out, "MAYBE")); !os.IsNotExist(err) {
		t.Errorf("optional missing secret wrote a file: %v", err)
	}
	if !strings.Contains(r.stderr, `"level":"WARN","msg":"optional secret skipped: secret MAYBE (valueFrom /app/not-there): ParameterNotFound`) {
		t.Errorf("no warning for the skipped optional secret:\n%s", r.stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(f.out, "all.json"))), &got); err != nil {
		t.Fatal(err)
	}
	if got["CERT"] != base64.StdEncoding.EncodeToString(bin) || got["USER"] != user || len(got) != len(files)+1 {
		t.Errorf("all.json has %d entries: %v", len(got), got)
	}
	env := readFile(t, filepath.Join(f.out, "all.env"))
	if !strings.Contains(env, "CERT='"+base64.StdEncoding.EncodeToString(bin)+"'\n") {
		t.Errorf("all.env does not carry the binary secret as base64:\n%s", env)
	}

	// One call per distinct secret and version: prod/app serves seven
	// names (AWSCURRENT spelled out or not) with one call, prod/rotated's
	// three names are three versions.
	wantSM := 1 + 3 + 1 // app, rotated ×3, cert
	if got := f.fake.Calls("GetSecretValue"); got != wantSM {
		t.Errorf("GetSecretValue calls = %d, want %d", got, wantSM)
	}
	regions := map[string]int{}
	for _, c := range f.fake.CallLog() {
		if c.Op == "GetParameters" {
			regions[c.Region]++
		}
	}
	if regions[region] != 1 || regions["eu-west-1"] != 1 || len(regions) != 2 {
		t.Errorf("GetParameters calls by region = %v, want one in each of us-east-1 and eu-west-1", regions)
	}
}

func TestInitFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/ok", f.value("ok"), true)
	f.fake.PutParameter(region, "/denied", f.value("denied"), true)
	f.fake.DenyAccess("GetParameters", "/denied")
	notJSON := f.value("notjson")
	plainSecret := f.fake.PutSecretString(region, "plain", notJSON)
	app := f.fake.PutSecretString(region, "app", `{"user":"u"}`)

	secrets := []secretCfg{
		{"name": "OK", "valueFrom": "/ok"},
		{"name": "MISSING", "valueFrom": "/not/there"},
		{"name": "DENIED", "valueFrom": "/denied"},
		{"name": "NO_KEY", "valueFrom": app + ":password::"},
		{"name": "NOT_JSON", "valueFrom": plainSecret + ":user::"},
		{"name": "GONE", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:gone-AbCdEf"},
		{"name": "OTHER_REGION", "valueFrom": strings.Replace(app, region, "eu-central-1", 1)},
	}
	r := f.run(t, secretCfg{"secrets": secrets})
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if got := listDir(t, f.out); len(got) != 0 {
		t.Errorf("files written despite failures: %v", got)
	}
	wantLines := []string{
		`secret MISSING (valueFrom /not/there): ParameterNotFound: no such parameter in us-east-1; check the name, and give the full ARN for a parameter in another region or account`,
		`secret DENIED (valueFrom /denied): AccessDeniedException: access denied: the task role needs ssm:GetParameters on this resource (and kms:Decrypt on its key if it uses a customer managed key) (AWS: User: arn:aws:sts::111122223333:assumed-role/ecs-task-role/fake-task is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:111122223333:parameter/denied because no identity-based policy allows the ssm:GetParameters action)`,
		`secret NO_KEY (valueFrom ` + app + `:password::): KeyNotFound: the secret's JSON has no top-level key \"password\" (keys are case-sensitive)`,
		`secret NOT_JSON (valueFrom ` + plainSecret + `:user::): NotJSONObject: the secret is not a JSON object, so key \"user\" cannot be read from it`,
		`secret GONE (valueFrom arn:aws:secretsmanager:us-east-1:111122223333:secret:gone-AbCdEf): ResourceNotFoundException: no such secret, or no version with that stage or id, in us-east-1; check the ARN, the stage and the version id (AWS: Secrets Manager can't find the specified secret.)`,
		`secret OTHER_REGION (valueFrom ` + strings.Replace(app, region, "eu-central-1", 1) + `): ResourceNotFoundException: no such secret, or no version with that stage or id, in eu-central-1; check the ARN, the stage and the version id (AWS: Secrets Manager can't find the specified secret.)`,
		`6 of 7 secrets could not be resolved; nothing was written`,
	}
	for _, w := range wantLines {
		if n := strings.Count(r.stderr, `"msg":"`+w+`"`); n != 1 {
			t.Errorf("log line %q appears %d times, want once in:\n%s", w, n, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "secret OK") {
		t.Errorf("the resolvable secret is reported as failing:\n%s", r.stderr)
	}
	// The fake denies the whole batch, as AWS does; the agent then asks per
	// name to find the one that lacks permission.
	if got := f.fake.Calls("GetParameters"); got != 4 {
		t.Errorf("GetParameters calls = %d, want 4 (one batch, then one per name)", got)
	}
}

func TestInitConfigErrorsMakeNoCall(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		config any
		args   []string
		want   string
	}{
		{"bad reference", secretCfg{"secrets": []secretCfg{{"name": "A", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b"}}}, nil,
			`secrets[0].valueFrom: invalid valueFrom`},
		{"duplicate", nil, []string{"--secret", "A=/a", "--secret", "A=/b"}, `duplicate name \"A\"`},
		{"slash in name", nil, []string{"--secret", "a/b=/a"}, `is not a valid environment variable name`},
		{"dots in name", nil, []string{"--secret", "..=/a"}, `is not a valid environment variable name`},
		{"template escapes", secretCfg{"secrets": []secretCfg{{"name": "A", "valueFrom": "/a"}},
			"templates": []secretCfg{{"template": "x", "destination": "../escape"}}}, nil, `templates[0].destination: path \"../escape\"`},
		{"unreadable config", nil, []string{"--config", "/"}, `--config: cannot read \"/\": is a directory`},
		{"unknown flag", nil, []string{"--secrets", "A=/a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.run(t, tt.config, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, r.stderr)
			}
		})
	}
	if n := len(f.fake.CallLog()); n != 0 || f.fake.CredentialRequests() != 0 {
		t.Errorf("configuration errors made %d AWS calls and %d credential requests", n, f.fake.CredentialRequests())
	}
	if got := listDir(t, f.out); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
}

func TestInitOutputDirAttacks(t *testing.T) {
	f := newFixture(t)
	v := f.value("a")
	f.fake.PutParameter(region, "/a", v, true)
	outside := t.TempDir()
	target := filepath.Join(outside, "target")
	if err := os.WriteFile(target, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		t.Fatal(err)
	}
	// A file symlink planted where the secret goes is replaced, not followed.
	if err := os.Symlink(target, filepath.Join(f.out, "A")); err != nil {
		t.Fatal(err)
	}
	r := f.run(t, nil, "--secret", "A=/a")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
	assertFile(t, target, "untouched", 0o644)

	// A directory symlink pointing outside makes the write fail.
	if err := os.Symlink(outside, filepath.Join(f.out, "sub")); err != nil {
		t.Fatal(err)
	}
	r = f.run(t, secretCfg{"secrets": []secretCfg{{"name": "B", "valueFrom": "/a", "file": "sub/target"}}})
	if r.code != 1 || !strings.Contains(r.stderr, "cannot write secrets") {
		t.Fatalf("exit %d, want 1 with a write error\n%s", r.code, r.stderr)
	}
	assertFile(t, target, "untouched", 0o644)
	if got := listDir(t, outside); len(got) != 1 {
		t.Errorf("files appeared outside the output directory: %v", got)
	}
}

func TestInitBoundaries(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("0123456789abcdef", 65536/16) // the Secrets Manager maximum
	f.secrets = append(f.secrets, big[:64])
	arn := f.fake.PutSecretString(region, "big", big)
	secrets := []secretCfg{{"name": "BIG", "valueFrom": arn}}
	for i := range 99 {
		p := fmt.Sprintf("/many/p%d", i)
		f.fake.PutParameter(region, p, f.value(fmt.Sprint(i)), false)
		secrets = append(secrets, secretCfg{"name": fmt.Sprintf("M%d", i), "valueFrom": p})
	}
	r := f.run(t, secretCfg{"secrets": secrets, "envFile": "all.env"})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertFile(t, filepath.Join(f.out, "BIG"), big, 0o444)
	assertFile(t, filepath.Join(f.out, "M98"), f.secrets[len(f.secrets)-1], 0o444)
	if got := f.fake.Calls("GetParameters"); got != 10 {
		t.Errorf("GetParameters calls = %d, want 10 for 99 names", got)
	}
}

func TestInitRetriesThrottlingAndGivesUpAtDeadline(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	var calls atomic.Int32
	f.fake.SetFault(func(op string) *awsfake.APIError {
		if calls.Add(1) <= 2 {
			return &awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
		}
		return nil
	})
	r := f.run(t, nil, "--secret", "A=/a")
	if r.code != 0 || f.fake.Calls("GetParameters") != 3 {
		t.Fatalf("exit %d after %d calls, want 0 after 3\n%s", r.code, f.fake.Calls("GetParameters"), r.stderr)
	}

	f.fake.SetFault(func(string) *awsfake.APIError {
		return &awsfake.APIError{Status: 503, Code: "ServiceUnavailable", Message: "down"}
	})
	start := time.Now()
	r = f.run(t, nil, "--secret", "A=/a", "--timeout", "2s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`secret A \(valueFrom /a\): (Timeout|ServiceUnavailable): `).MatchString(r.stderr) {
		t.Errorf("no error line for A:\n%s", r.stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("gave up after %s; the deadline was 2s", d)
	}
}

func TestInitCredentialFailure(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	env := withEnv(f.fake.Env(region), "AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong")
	r := runAgent(t, env, f.secrets, "init", "--output-dir", f.out, "--secret", "A=/a", "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "secret A (valueFrom /a): NoCredentials: no credentials: give the task a task role") {
		t.Fatalf("exit %d, want 1 with a NoCredentials line\n%s", r.code, r.stderr)
	}
	if n := len(f.fake.CallLog()); n != 0 {
		t.Errorf("%d AWS calls without credentials", n)
	}
}

func TestInitTakesRegionFromTaskMetadata(t *testing.T) {
	f := newFixture(t)
	v := f.value("meta")
	f.fake.PutParameter("ap-southeast-2", "/in/task/region", v, true)
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"TaskARN":"arn:aws:ecs:ap-southeast-2:111122223333:task/c/1"}`))
	}))
	defer meta.Close()
	var env []string
	for _, kv := range f.fake.Env(region) {
		if !strings.HasPrefix(kv, "AWS_REGION=") {
			env = append(env, kv)
		}
	}
	env = append(env, "ECS_CONTAINER_METADATA_URI_V4="+meta.URL+"/v4/x")
	r := runAgent(t, env, f.secrets, "init", "--output-dir", f.out, "--secret", "A=/in/task/region")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
}
