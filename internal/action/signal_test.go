package action

import (
	"context"
	"fmt"
	"io"
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

func newOne(t *testing.T, c config.Action, opts Options) Action {
	t.Helper()
	acts, err := New([]config.Action{c}, opts)
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
	a := newOne(t, config.Action{Signal: &config.SignalAction{PIDFile: writePIDFile(t, h.pid)}}, Options{})
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
	a := newOne(t, config.Action{Signal: &config.SignalAction{Process: name}}, Options{})
	for range 2 {
		if err := a.Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
		h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d HUP", h.pid))
	}
}

func TestSignalProcessNameSkipsChildrenOfAMatch(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe, child: true})
	a := newOne(t, config.Action{Signal: &config.SignalAction{Process: name}}, Options{})
	if err := a.Run(context.Background(), Change{}); err != nil {
		t.Fatal(err)
	}
	h.expectSignals(t, []int{h.pid, h.child}, fmt.Sprintf("sig %d HUP", h.pid))
}

func TestSignalConfiguredSignalIsSent(t *testing.T) {
	t.Parallel()
	exe, name := namedExe(t, t.TempDir(), testBinary(t))
	h := startCounter(t, helperOpts{exe: exe})
	for _, c := range []config.SignalAction{
		{Process: name, Signal: "sigusr1"},
		{PIDFile: writePIDFile(t, h.pid), Signal: "SIGUSR1"},
	} {
		if err := newOne(t, config.Action{Signal: &c}, Options{}).Run(context.Background(), Change{}); err != nil {
			t.Fatal(err)
		}
		h.expectSignals(t, []int{h.pid}, fmt.Sprintf("sig %d USR1", h.pid))
	}
}

func TestSignalNoProcess(t *testing.T) {
	t.Parallel()
	a := newOne(t, config.Action{Signal: &config.SignalAction{Process: "no-such-proc-x"}}, Options{})
	err := a.Run(context.Background(), Change{})
	want := `signal: no process named "no-such-proc-x" is visible: the agent and the app must share a PID namespace (pidMode: "task" in the task definition)`
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v, want %s", err, want)
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
		{"negative", file("negative.pid", "-1"), "signal: pid file " + dir + `/negative.pid holds -1, not a positive process id`},
		{"zero", file("zero.pid", "0"), "signal: pid file " + dir + `/zero.pid holds 0, not a positive process id`},
		{"huge", file("huge.pid", "99999999999"), "signal: pid file " + dir + `/huge.pid holds 99999999999, not a positive process id`},
		{"self", file("self.pid", "777"), "signal: pid file " + dir + "/self.pid names the agent itself (pid 777)"},
		{"not a directory", notDir + "/x.pid", "signal: reading pid file " + notDir + "/x.pid: not a directory"},
		{"not running", dead, "signal: pid 4194305 from " + dead + ` is not running: the pid file is stale, or the agent and the app do not share a PID namespace (pidMode: "task" in the task definition)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newOne(t, config.Action{Signal: &config.SignalAction{PIDFile: tc.path}}, Options{SelfPID: 777})
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
		procs, err := findProcesses(root, tc.name, 50)
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
	_, err := findProcesses(root, "nginx", 1)
	want := "signal: listing processes in " + root + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
