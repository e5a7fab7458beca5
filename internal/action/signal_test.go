package action

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

func newOne(t *testing.T, c config.ActionJSON, opts Options) Action {
	t.Helper()
	acts, err := New(typed(t, c), opts)
	if err != nil {
		t.Fatal(err)
	}
	return acts[0]
}

func writePIDFile(t *testing.T, pid int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSignalPIDFileSendsOneSIGHUPPerRun(t *testing.T) {
	t.Parallel()
	h := startCounter(t, helperOpts{exe: testBinary(t)})
	a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{PIDFile: writePIDFile(t, h.pid)}}, Options{})
	if a.Kind() != "signal" {
		t.Errorf("Kind() = %q, want signal", a.Kind())
	}
	for range 3 {
		if err := a.Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
		h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d HUP", h.pid))
	}
}

func TestSignalProcessNameSendsOneSIGHUP(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe})
	a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{Process: name}}, Options{})
	for range 2 {
		if err := a.Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
		h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d HUP", h.pid))
	}
}

// TestSignalSuccessIsLogged protects the one line that says a signal went
// out: successful actions were silent.
func TestSignalSuccessIsLogged(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe})
	pidFile := writePIDFile(t, h.pid)
	var logs strings.Builder
	opts := Options{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	for _, c := range []config.SignalJSON{{Process: name}, {PIDFile: pidFile, Signal: "SIGUSR1"}} {
		if err := newOne(t, config.ActionJSON{Signal: &c}, opts).Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
	}
	h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d HUP", h.pid), fmt.Sprintf("sig %d USR1", h.pid))
	var got []string
	for line := range strings.Lines(logs.String()) {
		_, rest, _ := strings.Cut(line, " level=")
		got = append(got, "level="+strings.TrimSpace(rest))
	}
	want := []string{
		fmt.Sprintf(`level=INFO msg="sent SIGHUP to pid %d" action=signal signal=SIGHUP pid=%d process=%s`, h.pid, h.pid, name),
		fmt.Sprintf(`level=INFO msg="sent SIGUSR1 to pid %d" action=signal signal=SIGUSR1 pid=%d pid_file=%s`, h.pid, h.pid, pidFile),
	}
	if !slices.Equal(got, want) {
		t.Errorf("log\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSignalProcessNameSkipsChildrenOfAMatch(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe, child: true})
	a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{Process: name}}, Options{})
	if err := a.Run(context.Background(), Change{}); err != nil {
		t.Fatal(err)
	}
	h.expectSignals(t, []int{h.pid, h.child}, fmt.Sprintf("sig %d HUP", h.pid))
}

func TestSignalConfiguredSignalIsSent(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe})
	for _, c := range []config.SignalJSON{
		{Process: name, Signal: "sigusr1"},
		{PIDFile: writePIDFile(t, h.pid), Signal: "SIGUSR1"},
	} {
		if err := newOne(t, config.ActionJSON{Signal: &c}, Options{}).Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
		h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d USR1", h.pid))
	}
}

// TestSignalNoProcessTellsPIDModeFromMisspeltName protects the cause a
// missing target is given: a misspelt name in a shared PID namespace was
// told to set pidMode. Probe (at start) and Run (at a rotation) say the same.
func TestSignalNoProcessTellsPIDModeFromMisspeltName(t *testing.T) {
	t.Parallel()
	// Without pidMode: task the agent sees its own tree: tini (1) → agent
	// (7) → a helper it started (8).
	alone := t.TempDir()
	fakeProc(t, alone, 1, 0, "tini", "S", "/tini\x00")
	fakeProc(t, alone, 7, 1, "agent", "S", "/agent\x00run\x00")
	fakeProc(t, alone, 8, 7, "sh", "S", "/bin/sh\x00")
	// With it, the app's processes are visible too.
	shared := t.TempDir()
	fakeProc(t, shared, 1, 0, "pause", "S", "/pause\x00")
	fakeProc(t, shared, 7, 1, "agent", "S", "/agent\x00run\x00")
	fakeProc(t, shared, 20, 1, "nginx", "S", "nginx: master process")
	fakeProc(t, shared, 21, 20, "nginx", "S", "nginx: worker process")
	fakeProc(t, shared, 30, 1, "php-fpm", "S", "php-fpm: master process")
	for _, tc := range []struct{ name, root, process, want string }{
		{"no shared pid namespace", alone, "nginx",
			`signal: no process named "nginx" is visible, and no process outside the agent's own: the agent and the app must share a PID namespace (pidMode: "task" in the task definition)`},
		{"misspelt name", shared, "ngnix",
			`signal: no process named "ngnix", though other processes are visible: check the name (visible: nginx, php-fpm)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{Process: tc.process}}, Options{ProcRoot: tc.root, SelfPID: 7})
			p, ok := a.(Prober)
			if !ok {
				t.Fatalf("%T is not a Prober", a)
			}
			if err := p.Probe(); err == nil || err.Error() != tc.want {
				t.Errorf("Probe: got %v\nwant %s", err, tc.want)
			}
			if err := a.Run(context.Background(), Change{}); err == nil || err.Error() != tc.want {
				t.Errorf("Run: got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestSignalProbeFindsTarget protects Probe from false alarms, and checks
// its pid file causes.
func TestSignalProbeFindsTarget(t *testing.T) {
	t.Parallel()
	root, dir := t.TempDir(), t.TempDir()
	fakeProc(t, root, 1, 0, "pause", "S", "")
	fakeProc(t, root, 7, 1, "agent", "S", "")
	fakeProc(t, root, 20, 1, "nginx", "S", "")
	pidFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	live, stale, missing := pidFile("live.pid", "20\n"), pidFile("stale.pid", "21\n"), filepath.Join(dir, "missing.pid")
	for _, tc := range []struct {
		name string
		sig  config.SignalJSON
		want string
	}{
		{"process found", config.SignalJSON{Process: "nginx"}, ""},
		{"pid file of a running process", config.SignalJSON{PIDFile: live}, ""},
		{"stale pid file", config.SignalJSON{PIDFile: stale}, "signal: the pid in " + stale + ` names no running process: the pid file is stale, or the agent and the app do not share a PID namespace (pidMode: "task" in the task definition)`},
		{"missing pid file", config.SignalJSON{PIDFile: missing}, "signal: pid file " + missing + " does not exist: is the app running, and is the file on a volume the agent mounts?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newOne(t, config.ActionJSON{Signal: &tc.sig}, Options{ProcRoot: root, SelfPID: 7}).(Prober).Probe()
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
				t.Errorf("Probe: got %v\nwant %q", err, tc.want)
			}
		})
	}
}

// TestSignalPIDFileContentNeverShown protects a secret from a pidFile that
// points at it: the error said "holds 4111111111111111, not a positive
// process id".
func TestSignalPIDFileContentNeverShown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 4194305 parses as a pid but names no process (above the kernel's
	// limit): a PIN that happens to fit.
	for _, value := range []string{"4111111111111111", "-4111111111111111", "0000", "hunter2", "12 34", "4194305"} {
		p := filepath.Join(dir, "PIN")
		if err := os.WriteFile(p, []byte(value+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{PIDFile: p}}, Options{ProcRoot: t.TempDir()})
		for _, err := range []error{a.Run(context.Background(), Change{}), a.(Prober).Probe()} {
			if err == nil {
				t.Fatalf("%q: no error", value)
			}
			if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), strings.TrimLeft(value, "-0")) && strings.TrimLeft(value, "-0") != "" {
				t.Errorf("error shows the file's content %q: %v", value, err)
			}
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignalPIDFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.pid")
	notDir := file("plain", "")
	// A pid that cannot be running: above the kernel's limit of 2^22.
	dead := file("dead.pid", "4194305\n")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", missing, "signal: pid file " + missing + " does not exist: is the app running, and is the file on a volume the agent mounts?"},
		{"empty", file("empty.pid", " \n"), "signal: pid file " + dir + "/empty.pid is empty"},
		{"garbage", file("garbage.pid", "hunter2\n"), "signal: pid file " + dir + "/garbage.pid holds 7 bytes of text, not a process id"},
		{"two pids", file("two.pid", "12\n13\n"), "signal: pid file " + dir + "/two.pid holds 5 bytes of text, not a process id"},
		{"negative", file("negative.pid", "-1"), "signal: pid file " + dir + `/negative.pid holds a 1-digit number that is not a positive process id`},
		{"zero", file("zero.pid", "0"), "signal: pid file " + dir + `/zero.pid holds a 1-digit number that is not a positive process id`},
		{"huge", file("huge.pid", "99999999999"), "signal: pid file " + dir + `/huge.pid holds a 11-digit number that is not a positive process id`},
		{"self", file("self.pid", "777"), "signal: pid file " + dir + "/self.pid names the agent itself (pid 777)"},
		{"not a directory", notDir + "/x.pid", "signal: reading pid file " + notDir + "/x.pid: not a directory"},
		{"not running", dead, "signal: the pid in " + dead + ` names no running process: the pid file is stale, or the agent and the app do not share a PID namespace (pidMode: "task" in the task definition)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newOne(t, config.ActionJSON{Signal: &config.SignalJSON{PIDFile: tc.path}}, Options{SelfPID: 777})
			err := a.Run(context.Background(), Change{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestSignalNotPermitted has a process running as one unprivileged uid try to
// signal a process running as another.
func TestSignalNotPermitted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: starting processes as other uids needs root")
	}
	t.Parallel()
	// Both uids must be able to exec the binary, and a go test build
	// directory is private to its owner: copy it somewhere they can reach.
	dir, err := os.MkdirTemp("", "action-eperm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "action.test")
	copyFile(t, testBinary(t), bin)
	exe, name := namedExe(t, dir, bin)

	const appUID, agentUID = 65534, 65533
	h := startCounter(t, helperOpts{exe: exe, dir: dir, cred: &syscall.Credential{Uid: appUID, Gid: appUID}})

	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$")
	cmd.Env = append(helperEnv(), "ACTION_TEST_HELPER=signal", "ACTION_TEST_PROCESS="+name)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: agentUID, Gid: agentUID}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("signalling helper: %v", err)
	}
	want := fmt.Sprintf(`error: signal: not permitted to signal pid %d (%q, uid %d): run the agent as root or as uid %d`, h.pid, name, appUID, appUID)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	h.expectSignals(t, []int{h.pid})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// fakeProc writes a /proc entry holding what findProcesses reads.
func fakeProc(t *testing.T, root string, pid, ppid int, comm, state, cmdline string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) %s %d 1 1 0 -1 4194560 0 0\n", pid, comm, state, ppid)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindProcesses(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fakeProc(t, root, 1, 0, "tini", "S", "/tini\x00--\x00nginx\x00")
	// nginx rewrites its argv; comm still says nginx.
	fakeProc(t, root, 10, 1, "nginx", "S", "nginx: master process nginx -g daemon off;")
	fakeProc(t, root, 11, 10, "nginx", "S", "nginx: worker process")
	fakeProc(t, root, 12, 10, "nginx", "S", "nginx: worker process")
	// A grandchild under a non-matching parent is top-most in its own right.
	fakeProc(t, root, 20, 1, "sh", "S", "/bin/sh\x00-c\x00nginx\x00")
	fakeProc(t, root, 21, 20, "nginx", "S", "/usr/sbin/nginx\x00")
	// argv[0] matches though comm is a thread's or interpreter's name.
	fakeProc(t, root, 30, 1, "python3", "S", "/app/bin/nginx\x00serve\x00")
	fakeProc(t, root, 40, 1, "nginx", "Z", "")
	fakeProc(t, root, 50, 1, "nginx", "S", "nginx\x00") // the agent itself
	fakeProc(t, root, 60, 1, "a (weird) nam", "S", "x\x00")
	// comm keeps 15 bytes of a longer name.
	fakeProc(t, root, 70, 1, "a-very-long-pro", "S", "")
	// Vanished between listing and reading: a directory without files.
	if err := os.Mkdir(filepath.Join(root, "80"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		want []int
	}{
		{"nginx", []int{10, 21, 30}},
		{"a (weird) nam", []int{60}},
		{"a-very-long-process-name", []int{70}},
		{"tini", []int{1}},
		{"absent", nil},
	} {
		procs, _, err := findProcesses(root, tc.name, 50)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, p := range procs {
			got = append(got, p.pid)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("findProcesses(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFindProcessesMissingProcRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "proc")
	_, _, err := findProcesses(root, "nginx", 1)
	want := "signal: listing processes in " + root + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
