// Package compose runs compose.yaml: ECS tasks' containers on one machine
// under Docker Compose, built from this tree with no registry: the sidecar and
// init patterns (files, SIGHUP) and the exec wrapper (environment, restart).
package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

var keep = flag.Bool("keep", false, "leave the containers, volume and images in place after the test")

// The values cmd/devaws seeds.
const (
	seededPassword = "pa'ss $HOME \\n\"word\""
	seededFlag     = "on"
	seededUsername = "app"
)

func TestComposeTask(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs containers; skipped with -short")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon answers (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	composeCmd := findCompose(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	id := randomHex(6)
	project := "esa-compose-" + id
	images := map[string]string{
		"AGENT_IMAGE":   "ecs-secrets-agent:test-" + id,
		"DEVAWS_IMAGE":  "ecs-secrets-agent-devaws:test-" + id,
		"TESTAPP_IMAGE": "ecs-secrets-agent-testapp:test-" + id,
	}
	env := os.Environ()
	for k, v := range images {
		env = append(env, k+"="+v)
	}
	compose := func(ctx context.Context, args ...string) *exec.Cmd {
		full := slices.Concat(composeCmd[1:], []string{"-p", project, "-f", filepath.Join(root, "deploy/compose/compose.yaml")}, args)
		cmd := exec.CommandContext(ctx, composeCmd[0], full...)
		cmd.Env = env
		return cmd
	}

	// Clean up even on failure: every container, both volumes, the images.
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if t.Failed() {
			out, _ := compose(cctx, "logs", "--no-color").CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
		if *keep {
			t.Logf("left in place (-keep): project %s, images %v", project, images)
			return
		}
		if out, err := compose(cctx, "down", "-v", "--remove-orphans", "--timeout", "5").CombinedOutput(); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		for _, img := range images {
			_ = exec.CommandContext(cctx, "docker", "image", "rm", "-f", img).Run()
		}
	})

	start := time.Now()
	ctx, cancel := afterBuild(t.Context(), waitBudget, func(ctx context.Context) {
		buildImages(ctx, t, root, images)
	})
	defer cancel()
	t.Logf("images built in %s", time.Since(start).Round(time.Millisecond))

	// up -d returns once each container has started, after its dependencies'
	// conditions held: devaws healthy, init and install-agent exited 0, the
	// agent healthy.
	start = time.Now()
	if out, err := compose(ctx, "up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("tasks up in %s", time.Since(start).Round(time.Millisecond))
	logs := func(service string) func() []byte {
		return func() []byte {
			out, err := compose(ctx, "logs", "--no-color", service).Output()
			if err != nil {
				t.Fatalf("compose logs %s: %v", service, err)
			}
			return out
		}
	}

	// 1. At start: the sidecar's app read the files, the exec app its environment.
	sidecarFirst := checkSidecarStart(ctx, t, compose, logs("app"))
	execFirst := checkExecStart(ctx, t, compose, logs("exec-app"))

	// 2. Rotate through the emulator. The sidecar rewrites the file and sends
	// SIGHUP; the app reads the new value. The exec wrapper restarts its app
	// with the new value in its environment.
	port := strings.TrimSpace(runOut(ctx, t, compose(ctx, "port", "devaws", "4566")))
	rotated := "rotated-" + randomHex(8)
	client := ssm.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String("http://" + port),
	})
	start = time.Now()
	if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String("/demo/db/password"), Value: aws.String(rotated),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
	}); err != nil {
		t.Fatalf("rotating /demo/db/password through the emulator at %s: %v", port, err)
	}
	reload := waitMarker(ctx, t, logs("app"), "reload", func(m marker) bool { return m.Values["DB_PASSWORD"] == rotated })
	t.Logf("rotation reached the sidecar's app in %s", time.Since(start).Round(time.Millisecond))
	if reload.PID != sidecarFirst.PID {
		t.Errorf("reload came from pid %d, want the same process %d (SIGHUP, not a restart)", reload.PID, sidecarFirst.PID)
	}
	if reload.Values["FEATURE_FLAG"] != seededFlag {
		t.Errorf("after rotation FEATURE_FLAG = %q, want %q", reload.Values["FEATURE_FLAG"], seededFlag)
	}
	restarted := waitMarker(ctx, t, logs("exec-app"), "start", func(m marker) bool { return m.Env["DB_PASSWORD"] == rotated })
	t.Logf("rotation restarted the exec app in %s", time.Since(start).Round(time.Millisecond))
	checkExecRestart(ctx, t, compose, logs("exec-app"), execFirst, restarted)

	// 3. The agent's container dies (SIGKILL, as the kernel's OOM killer
	// would), a rotation lands while it is down, and it is started again in
	// place (an ECS container restart policy): the app, which ran on, is
	// told. Without that, the restarted agent rewrote the file and said
	// nothing: the app kept the old value until its next restart.
	runOut(ctx, t, compose(ctx, "kill", "-s", "SIGKILL", "agent"))
	again := "rotated-" + randomHex(8)
	if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String("/demo/db/password"), Value: aws.String(again),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
	}); err != nil {
		t.Fatalf("rotating /demo/db/password while the agent is down: %v", err)
	}
	start = time.Now()
	runOut(ctx, t, compose(ctx, "start", "agent"))
	told := waitMarker(ctx, t, logs("app"), "reload", func(m marker) bool { return m.Values["DB_PASSWORD"] == again })
	t.Logf("a rotation made while the agent was down reached the app %s after the agent's restart", time.Since(start).Round(time.Millisecond))
	if told.PID != sidecarFirst.PID {
		t.Errorf("the app that was told is pid %d, want the one that ran on, %d", told.PID, sidecarFirst.PID)
	}
	if n := countMarkers(t, logs("app")(), "reload"); n != 2 {
		t.Errorf("the app reloaded %d times for two rotations, want 2", n)
	}
}

// waitBudget bounds what the test waits for once the images exist: compose
// up (the health checks and dependencies included), the apps' first reads,
// and a rotation reaching both apps.
const waitBudget = 3 * time.Minute

// afterBuild runs build under parent alone (the test binary's -timeout), then
// returns a context whose deadline is budget from when build returned. Under
// load the build alone took minutes (`go build … signal: killed`): a deadline
// that counted it failed the test for the machine's speed, not the agent's.
func afterBuild(parent context.Context, budget time.Duration, build func(context.Context)) (context.Context, context.CancelFunc) {
	build(parent)
	return context.WithTimeout(parent, budget)
}

// checkSidecarStart checks the sidecar and init patterns once up: the app read
// the files; init exited 0; the agent runs as 65532 with a read-only root.
func checkSidecarStart(ctx context.Context, t *testing.T, compose composeFunc, logs func() []byte) marker {
	t.Helper()
	first := waitMarker(ctx, t, logs, "start", func(m marker) bool { return true })
	want := map[string]string{"DB_PASSWORD": seededPassword, "FEATURE_FLAG": seededFlag, "init/DB_USERNAME": seededUsername}
	for k, v := range want {
		if first.Values[k] != v {
			t.Errorf("app read %s = %q at start, want %q", k, first.Values[k], v)
		}
	}
	if first.UID != 65532 {
		t.Errorf("app runs as uid %d, want 65532", first.UID)
	}
	initID := containerID(ctx, t, compose, "init")
	if code := inspect(ctx, t, initID, "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("init exited %s, want 0", code)
	}
	agentID := containerID(ctx, t, compose, "agent")
	for _, c := range []struct{ format, want string }{
		{"{{.Config.User}}", "65532:65532"},
		{"{{.HostConfig.ReadonlyRootfs}}", "true"},
		{"{{.State.Health.Status}}", "healthy"},
	} {
		if got := inspect(ctx, t, agentID, c.format); got != c.want {
			t.Errorf("agent container %s = %q, want %q", c.format, got, c.want)
		}
	}
	// The process itself, as the kernel sees it.
	if out, err := exec.CommandContext(ctx, "docker", "top", agentID, "-o", "pid,uid,comm").Output(); err != nil {
		t.Errorf("docker top agent: %v", err)
	} else if fields := strings.Fields(lastLine(string(out))); len(fields) < 3 || fields[1] != "65532" || fields[2] != "agent" {
		t.Errorf("docker top agent: want uid 65532 running agent, got\n%s", out)
	}
	return first
}

// checkExecStart checks the exec pattern once up: the installer exited 0; the
// app got the seeded values in its environment and AGENT_CONFIG not; its
// parent is the agent, PID 1 of the container; nothing but the agent binary is
// in the shared volume and nothing in the default output directory.
func checkExecStart(ctx context.Context, t *testing.T, compose composeFunc, logs func() []byte) marker {
	t.Helper()
	first := waitMarker(ctx, t, logs, "start", func(m marker) bool { return true })
	checkExecMarker(t, "at start", first, seededPassword)
	installID := containerID(ctx, t, compose, "install-agent")
	if code := inspect(ctx, t, installID, "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("install-agent exited %s, want 0", code)
	}
	id := containerID(ctx, t, compose, "exec-app")
	if got := inspect(ctx, t, id, "{{.Path}} {{.HostConfig.ReadonlyRootfs}}"); got != "/shared/agent true" {
		t.Errorf("exec-app runs %q, want \"/shared/agent true\" (the installed agent, read-only root)", got)
	}
	return first
}

// checkExecRestart checks the exec app after a rotation: restarted once by
// the agent (a new process, same parent, same container), with the new
// value; still nothing on disk; and on `compose stop`, the agent as PID 1
// passes SIGTERM to the app and exits 0 with it.
func checkExecRestart(ctx context.Context, t *testing.T, compose composeFunc, logs func() []byte, first, restarted marker) {
	t.Helper()
	checkExecMarker(t, "after rotation", restarted, restarted.Env["DB_PASSWORD"])
	if restarted.PID == first.PID {
		t.Errorf("after rotation the app still runs as pid %d, want a new process (restart)", first.PID)
	}
	if starts := countMarkers(t, logs(), "start"); starts != 2 {
		t.Errorf("exec app started %d times, want 2 (once, then one restart for one rotation)", starts)
	}
	id := containerID(ctx, t, compose, "exec-app")
	if got := inspect(ctx, t, id, "{{.State.Running}} {{.RestartCount}}"); got != "true 0" {
		t.Errorf("exec-app container running, restart count = %q, want \"true 0\": the agent restarts the app, not Docker", got)
	}
	start := time.Now()
	runOut(ctx, t, compose(ctx, "stop", "--timeout", "20", "exec-app"))
	if got := inspect(ctx, t, id, "{{.State.ExitCode}}"); got != "0" {
		t.Errorf("exec-app exited %s after SIGTERM, want 0 (the agent forwards SIGTERM and exits with the app)", got)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("exec-app took %s to stop, want well under the 20s stop timeout", d.Round(time.Millisecond))
	}
}

func checkExecMarker(t *testing.T, when string, m marker, password string) {
	t.Helper()
	if m.Env["DB_PASSWORD"] != password || m.Env["FEATURE_FLAG"] != seededFlag {
		t.Errorf("exec app's environment %s: DB_PASSWORD=%q FEATURE_FLAG=%q, want %q and %q",
			when, m.Env["DB_PASSWORD"], m.Env["FEATURE_FLAG"], password, seededFlag)
	}
	if v, ok := m.Env["AGENT_CONFIG"]; ok {
		t.Errorf("exec app's environment %s has AGENT_CONFIG=%q, want it not passed on", when, v)
	}
	if m.PPID != 1 {
		t.Errorf("exec app's parent %s is pid %d, want 1 (the agent, PID 1 of the container)", when, m.PPID)
	}
	if m.UID != 65532 {
		t.Errorf("exec app runs as uid %d %s, want 65532", m.UID, when)
	}
	want := map[string][]string{"/shared": {"agent"}, "/run/secrets": {}}
	if !reflect.DeepEqual(m.Dirs, want) {
		t.Errorf("exec app sees %s %q, want %q: exec writes no file", when, m.Dirs, want)
	}
}

// composeFunc makes a compose command for the test's project.
type composeFunc func(ctx context.Context, args ...string) *exec.Cmd

// findCompose returns the compose command that works here: the docker CLI
// plugin or the standalone docker-compose.
func findCompose(t *testing.T) []string {
	t.Helper()
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if err := exec.Command(c[0], append(c[1:], "version")...).Run(); err == nil {
			return c
		}
	}
	t.Skip("no Docker Compose: neither `docker compose` nor `docker-compose` runs")
	return nil
}

// buildImages builds the agent image with `make image` (the offline path a
// user takes) and the devaws and testapp images FROM scratch the same way:
// static binaries built here, copied into an empty image. The devaws image
// holds the agent too, for its healthcheck.
func buildImages(ctx context.Context, t *testing.T, root string, images map[string]string) {
	t.Helper()
	dir := t.TempDir()
	agentContext := filepath.Join(dir, "agent")
	make := exec.CommandContext(ctx, "make", "-s", "image", "IMAGE="+images["AGENT_IMAGE"], "CONTEXT="+agentContext)
	make.Dir = root
	runOut(ctx, t, make)

	for _, img := range []struct {
		name, envVar string
		pkg          string
		copies       []string // more files for the build context
		dockerfile   string
	}{
		{"devaws", "DEVAWS_IMAGE", "./cmd/devaws", []string{filepath.Join(agentContext, "rootfs", "agent")},
			"FROM scratch\nCOPY devaws agent /\nUSER 65532:65532\nENTRYPOINT [\"/devaws\"]\n"},
		{"testapp", "TESTAPP_IMAGE", "./cmd/testapp", nil,
			"FROM scratch\nCOPY testapp /\nUSER 65532:65532\nENTRYPOINT [\"/testapp\"]\n"},
	} {
		bctx := filepath.Join(dir, img.name)
		if err := os.MkdirAll(bctx, 0o755); err != nil {
			t.Fatal(err)
		}
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(bctx, img.name), img.pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		runOut(ctx, t, build)
		for _, src := range img.copies {
			runOut(ctx, t, exec.CommandContext(ctx, "cp", src, bctx+"/"))
		}
		if err := os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte(img.dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		runOut(ctx, t, exec.CommandContext(ctx, "docker", "build", "-q", "-t", images[img.envVar], bctx))
	}
}

// marker is a line testapp prints (cmd/testapp).
type marker struct {
	Event  string              `json:"event"`
	PID    int                 `json:"pid"`
	PPID   int                 `json:"ppid"`
	UID    int                 `json:"uid"`
	Values map[string]string   `json:"values"`
	Env    map[string]string   `json:"env"`
	Dirs   map[string][]string `json:"dirs"`
}

// markers parses the marker lines in a service's log.
func markers(t *testing.T, log []byte) []marker {
	t.Helper()
	var ms []marker
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		_, rest, found := strings.Cut(sc.Text(), "TESTAPP ")
		if !found {
			continue
		}
		var m marker
		if err := json.Unmarshal([]byte(rest), &m); err != nil {
			t.Fatalf("bad marker line %q: %v", sc.Text(), err)
		}
		ms = append(ms, m)
	}
	return ms
}

func countMarkers(t *testing.T, log []byte, event string) int {
	t.Helper()
	n := 0
	for _, m := range markers(t, log) {
		if m.Event == event {
			n++
		}
	}
	return n
}

// waitMarker polls the app's log until a marker of the event satisfies ok.
func waitMarker(ctx context.Context, t *testing.T, logs func() []byte, event string, ok func(marker) bool) marker {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		seen := markers(t, logs())
		for _, m := range seen {
			if m.Event == event && ok(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q marker from the app within 90s; saw %+v", event, seen)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for a %q marker: %v", event, ctx.Err())
		case <-tick.C:
		}
	}
}

func containerID(ctx context.Context, t *testing.T, compose composeFunc, service string) string {
	t.Helper()
	id := strings.TrimSpace(runOut(ctx, t, compose(ctx, "ps", "-a", "-q", service)))
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("compose ps -q %s: want one container, got %q", service, id)
	}
	return id
}

func inspect(ctx context.Context, t *testing.T, id, format string) string {
	t.Helper()
	return strings.TrimSpace(runOut(ctx, t, exec.CommandContext(ctx, "docker", "inspect", "-f", format, id)))
}

func runOut(ctx context.Context, t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
