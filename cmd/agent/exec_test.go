package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
)

// testApp is a stand-in app for exec: it appends "start PID VALUE" to the
// file out, where VALUE is its $watch, then "hup PID VALUE" per SIGHUP, and
// exits on SIGTERM or SIGINT with $AGENT_TEST_EXIT (default 0).
func testApp(out, watch string) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	line := func(what string) {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			os.Exit(90)
		}
		fmt.Fprintf(f, "%s %d %s\n", what, os.Getpid(), base64.StdEncoding.EncodeToString([]byte(os.Getenv(watch))))
		f.Close()
	}
	line("start")
	for s := range ch {
		if s == syscall.SIGHUP {
			line("hup")
			continue
		}
		line(s.String()) // "terminated", "interrupt"
		code, _ := strconv.Atoi(os.Getenv("AGENT_TEST_EXIT"))
		os.Exit(code)
	}
}

// appLine is one line the test app wrote.
type appLine struct {
	what  string
	pid   int
	value string
}

func appLines(t *testing.T, path string) []appLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []appLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		v := ""
		if len(f) == 3 {
			raw, _ := base64.StdEncoding.DecodeString(f[2])
			v = string(raw)
		}
		out = append(out, appLine{what: f[0], pid: pid, value: v})
	}
	return out
}

// envOf parses `env -0` output.
func envOf(out string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(out, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestExecPutsSecretsInTheEnvironmentAndBecomesTheApp(t *testing.T) {
	f := newFixture(t)
	nasty := "line1\nline2 'single' \"double\" $HOME `tick` \\ é"
	f.secrets = append(f.secrets, nasty)
	f.fake.PutParameter(region, "/app/nasty", nasty, true)
	user := f.value("user")
	f.fake.PutParameter(region, "/app/user", user, false)
	bin := []byte{0, 1, 2, 0xff}
	binARN := f.fake.PutSecretBinary(region, "app/bin", bin)
	app := f.fake.PutSecretString(region, "app/json", `{"host":"db","port":5432}`)
	conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{
		{"name": "NASTY", "valueFrom": "/app/nasty"},
		{"name": "DB_USER", "valueFrom": "/app/user"},
		{"name": "BIN", "valueFrom": binARN},
		{"name": "APP", "valueFrom": app, "expand": true},
	}})
	env := append(f.fake.Env(region), "AGENT_CONFIG="+string(conf), "KEEP=kept", "DB_USER=overridden-by-the-secret", "PATH="+os.Getenv("PATH"))
	cmd := exec.Command(agentBin, "exec", "--", "sh", "-c", `echo $$ > "$PIDFILE"; env -0`)
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd.Env = append(env, "PIDFILE="+pidFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec: %v\n%s", err, stderr.String())
	}
	got := envOf(stdout.String())
	want := map[string]string{"NASTY": nasty, "DB_USER": user, "BIN": base64.StdEncoding.EncodeToString(bin),
		"APP_host": "db", "APP_port": "5432", "KEEP": "kept"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("$%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["AGENT_CONFIG"]; ok {
		t.Error("AGENT_CONFIG was passed on to the app")
	}
	// No refresh: the agent replaced itself with the app (same pid).
	if pid := strings.TrimSpace(readFile(t, pidFile)); pid != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("app pid %s, agent pid %d: want exec, not a child", pid, cmd.Process.Pid)
	}
	assertNoSecrets(t, "stderr", stderr.String(), f.secrets)
	if entries, _ := os.ReadDir(f.out); len(entries) != 0 {
		t.Errorf("exec wrote files with no output directory configured: %v", entries)
	}
}

func TestExecExitCodes(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	env := append(f.fake.Env(region), "PATH="+os.Getenv("PATH"))
	for _, mode := range []string{"exec", "child"} {
		for _, tt := range []struct {
			script string
			code   int
		}{{"exit 0", 0}, {"exit 3", 3}, {"kill -TERM $$", 143}} {
			t.Run(mode+"/"+tt.script, func(t *testing.T) {
				args := []string{"exec", "--secret", "A=/a"}
				if mode == "child" {
					args = append(args, "--interval", "1h")
				}
				r := runAgent(t, env, f.secrets, append(args, "--", "sh", "-c", tt.script)...)
				code := r.code
				if code == -1 { // exec'd shell died by the signal itself
					code = 143
				}
				if code != tt.code {
					t.Errorf("exit %d, want %d\n%s", r.code, tt.code, r.stderr)
				}
			})
		}
	}
}

func TestExecFailingSecretNeverStartsTheApp(t *testing.T) {
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "ran")
	env := append(f.fake.Env(region), "PATH="+os.Getenv("PATH"))
	for _, extra := range [][]string{nil, {"--interval", "1h", "--timeout", "2s"}} {
		args := append([]string{"exec", "--secret", "A=/missing"}, extra...)
		r := runAgent(t, env, f.secrets, append(args, "--", "touch", marker)...)
		if r.code != 1 || !strings.Contains(r.stderr, "secret A (valueFrom /missing): ParameterNotFound") {
			t.Errorf("%v: exit %d, want 1 with the reason\n%s", extra, r.code, r.stderr)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Fatalf("%v: the app ran despite a failing secret", extra)
		}
	}
	r := runAgent(t, env, f.secrets, "exec", "--secret", "A=/missing")
	if r.code != 2 {
		t.Errorf("exec without a command: exit %d, want 2", r.code)
	}
}

// execAgent starts `agent exec` with the test app as its command.
func execAgent(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "app.out")
	cmd := exec.Command(agentBin, append(append([]string{"exec"}, args...), "--", os.Args[0])...)
	cmd.Env = append(env, "AGENT_TEST_APP="+out)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd, out, &stderr
}

// lockedBuffer is a process's output that a test may read while the
// process still writes it (os/exec copies into it from its own goroutine).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestExecForwardsSignalsAndExitsWithTheApp(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd, out, stderr := execAgent(t, append(f.fake.Env(region), "AGENT_TEST_WATCH=A", "AGENT_TEST_EXIT=7"), "--secret", "A=/a", "--interval", "1h")
		eventually(t, "app started", 30*time.Second, func() bool { return len(appLines(t, out)) == 1 })
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
				t.Errorf("%v: agent exit %v, want the app's 7\n%s", sig, err, stderr)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%v: agent still running after the app got the signal\n%s", sig, stderr)
		}
		lines := appLines(t, out)
		wantWhat := map[syscall.Signal]string{syscall.SIGTERM: "terminated", syscall.SIGINT: "interrupt"}[sig]
		if len(lines) != 2 || lines[1].what != wantWhat {
			t.Errorf("%v: app saw %+v", sig, lines)
		}
	}
}

func TestExecRotationRestartsOrSignalsTheApp(t *testing.T) {
	for _, mode := range []string{"restart", "signal"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			v1 := f.value("v1")
			f.fake.PutParameter(region, "/rot", v1, true)
			action := secretCfg{"restart": secretCfg{"gracePeriod": "5s"}}
			if mode == "signal" {
				action = secretCfg{"signal": secretCfg{}}
			}
			conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{{"name": "ROT", "valueFrom": "/rot"}},
				"refresh": secretCfg{"interval": "1s", "jitter": "100ms"}, "onChange": []secretCfg{action}})
			cmd, out, stderr := execAgent(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf), "AGENT_TEST_WATCH=ROT"))
			eventually(t, "app started", 30*time.Second, func() bool { return len(appLines(t, out)) == 1 })
			first := appLines(t, out)[0]
			if first.value != v1 {
				t.Fatalf("app started with %q, want %q", first.value, v1)
			}
			// Quiet cycles change nothing.
			polls := f.fake.Calls("GetParameters")
			eventually(t, "two polls", 30*time.Second, func() bool { return f.fake.Calls("GetParameters") >= polls+2 })
			if n := len(appLines(t, out)); n != 1 {
				t.Fatalf("app lines after quiet cycles: %+v", appLines(t, out))
			}

			v2 := f.value("v2")
			f.fake.PutParameter(region, "/rot", v2, true)
			eventually(t, "the app to hear of it", 30*time.Second, func() bool { return len(appLines(t, out)) >= 2 })
			polls = f.fake.Calls("GetParameters")
			eventually(t, "two more polls", 30*time.Second, func() bool { return f.fake.Calls("GetParameters") >= polls+2 })
			lines := appLines(t, out)
			switch mode {
			case "restart":
				// The old app got SIGTERM, a new one started with the new value.
				if len(lines) != 3 || lines[1].what != "terminated" || lines[2].what != "start" || lines[2].value != v2 || lines[2].pid == first.pid {
					t.Errorf("app lines %+v, want terminated then one new start with the new value", lines)
				}
			case "signal":
				// SIGHUP to the same process; its environment is the old one.
				if len(lines) != 2 || lines[1].what != "hup" || lines[1].pid != first.pid {
					t.Errorf("app lines %+v, want one hup to the same pid", lines)
				}
			}
			// Nothing secret in the agent's own arguments or environment.
			for _, file := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", cmd.Process.Pid, file))
				if err != nil {
					t.Fatal(err)
				}
				assertNoSecrets(t, "the agent's "+file, string(b), f.secrets)
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			assertNoSecrets(t, "stderr", stderr.String(), f.secrets)
		})
	}
}

func TestInstallCopiesTheBinary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	r := runAgent(t, nil, nil, "install", dir)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, "agent"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v, %v", fi, err)
	}
	want, _ := os.ReadFile(agentBin)
	if got, _ := os.ReadFile(filepath.Join(dir, "agent")); !bytes.Equal(got, want) {
		t.Error("installed binary differs from the agent")
	}
	out, err := exec.Command(filepath.Join(dir, "agent"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "ecs-secrets-agent ") {
		t.Errorf("installed agent version: %q, %v", out, err)
	}
}

// TestExecReapsZombiesAsPID1 runs the agent as PID 1 of a new PID namespace
// with an app that leaves an orphan behind; the agent must reap it.
func TestExecReapsZombiesAsPID1(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not found (util-linux)")
	}
	if err := exec.Command(unshare, "--pid", "--fork", "true").Run(); err != nil {
		t.Skipf("cannot create a PID namespace here (needs root or user namespaces): %v", err)
	}
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	ready := filepath.Join(t.TempDir(), "ready")
	// The app forks a short-lived grandchild and leaves it: it re-parents to
	// PID 1, the agent, and must not stay a zombie when it exits.
	script := `(sleep 0.2 &) ; touch "$READY"; exec sleep 60`
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", agentBin, "exec", "--secret", "A=/a", "--interval", "1h", "--", "sh", "-c", script)
	cmd.Env = append(f.fake.Env(region), "PATH="+os.Getenv("PATH"), "READY="+ready)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, "app started", 30*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })
	agentPID := childOf(t, cmd.Process.Pid)
	// Wait until the orphan has exited and been re-parented: then the agent
	// has only the app left, and no zombie.
	eventually(t, "orphan reaped", 10*time.Second, func() bool {
		kids := childrenOf(agentPID)
		for _, k := range kids {
			if state(k) == "Z" {
				return false
			}
		}
		return len(kids) == 1
	})
	_ = syscall.Kill(agentPID, syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
			t.Errorf("exit %v, want 143 (the app died of the forwarded SIGTERM)\n%s", err, stderr.String())
		}
	}
}

func childOf(t *testing.T, pid int) int {
	t.Helper()
	var kids []int
	eventually(t, "the namespaced agent", 10*time.Second, func() bool { kids = childrenOf(pid); return len(kids) == 1 })
	return kids[0]
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(s)
			out = append(out, n)
		}
	}
	return out
}

func state(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return f[0]
}

func TestExecAndInstallHelpPrintTheirUsageAndExitZero(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-h"}, "-interval string"},
		{[]string{"exec", "--help"}, "usage: agent exec [flags] -- COMMAND [ARGS...]"},
		{[]string{"install", "-h"}, "usage: agent install DIR"},
	} {
		r := runAgent(t, nil, nil, tc.args...)
		if r.code != 0 || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("agent %v: exit %d, stdout %q; want 0 and %q", tc.args, r.code, r.stdout, tc.want)
		}
	}
	if r := runAgent(t, nil, nil, "exec"); r.code != 2 || !strings.Contains(r.stderr, "usage: agent exec") {
		t.Errorf("agent exec with no command: exit %d, stderr %q; want 2 and the usage", r.code, r.stderr)
	}
}

// blockingLoop's Run returns only once ctx is done and release is closed,
// like a loop in the middle of a render when the app exits.
type blockingLoop struct{ release chan struct{} }

func (b blockingLoop) Run(ctx context.Context, _ refresh.Events) error {
	<-ctx.Done()
	<-b.release
	return nil
}

func TestExecShutdownWaitsForTheLoopBeforeClosing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := blockingLoop{release: make(chan struct{})}
		stop := goRun(context.Background(), b, refresh.Events{})
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("stop returned while Run was still rendering: Close would pull the output root from under it")
		default:
		}
		close(b.release)
		synctest.Wait()
		select {
		case <-stopped:
		default:
			t.Fatal("stop did not return once Run had")
		}
		stop() // again, as the deferred call does: no hang
	})
}

// A config reload that adds a secret restarts the app with it: the restart
// builds the environment from the reloaded settings, not the first ones.
func TestExecReloadRestartsTheAppWithTheNewSecret(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	vb := f.value("b")
	f.fake.PutParameter(region, "/b", vb, true)
	confPath := filepath.Join(t.TempDir(), "agent.json")
	conf := func(names ...string) {
		var secrets []secretCfg
		for _, n := range names {
			secrets = append(secrets, secretCfg{"name": n, "valueFrom": "/" + strings.ToLower(n)})
		}
		b, _ := json.Marshal(secretCfg{"secrets": secrets, "refresh": secretCfg{"interval": "1h"},
			"onChange": []secretCfg{{"restart": secretCfg{"gracePeriod": "5s"}}}})
		tmp := confPath + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, confPath); err != nil {
			t.Fatal(err)
		}
	}
	conf("A")
	cmd, out, stderr := execAgent(t, append(f.fake.Env(region), "AGENT_TEST_WATCH=B"), "--config", confPath)
	eventually(t, "app started", 30*time.Second, func() bool { return len(appLines(t, out)) == 1 })
	if v := appLines(t, out)[0].value; v != "" {
		t.Fatalf("B = %q before it was configured", v)
	}
	conf("A", "B")
	eventually(t, "a restart", 30*time.Second, func() bool { return len(appLines(t, out)) >= 3 })
	lines := appLines(t, out)
	if lines[1].what != "terminated" || lines[2].what != "start" || lines[2].value != vb {
		t.Errorf("app lines %+v, want terminated, then a start with B set", lines)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	assertNoSecrets(t, "stderr", stderr.String(), f.secrets)
}
