package action

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// The helper is this test binary run again with ACTION_TEST_HELPER set:
//
//	counter: reports "ready <pid>" once its handlers are installed, then one
//	         "sig <pid> <NAME>" line per SIGHUP, SIGUSR1 or SIGUSR2; with
//	         ACTION_TEST_CHILD=1 it first starts a copy of itself as its child.
//	         It exits when stdin closes.
//	signal:  runs a signal action for ACTION_TEST_PROCESS and prints
//	         "ok" or "error: <message>".
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("ACTION_TEST_HELPER") {
	case "counter":
		counter()
	case "signal":
		acts, err := New(typed(t, config.ActionJSON{Signal: &config.SignalJSON{Process: os.Getenv("ACTION_TEST_PROCESS")}}), Options{})
		if err == nil {
			err = acts[0].Run(context.Background(), Change{})
		}
		if err != nil {
			fmt.Printf("error: %v\n", err)
		} else {
			fmt.Println("ok")
		}
		os.Exit(0)
	}
}

func counter() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	var child *exec.Cmd
	if os.Getenv("ACTION_TEST_CHILD") == "1" {
		child = exec.Command(os.Args[0], os.Args[1:]...)
		child.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "ACTION_TEST_CHILD=") })
		child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	pid := os.Getpid()
	fmt.Printf("ready %d\n", pid)
	names := map[os.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}
	for {
		select {
		case s := <-sigs:
			fmt.Printf("sig %d %s\n", pid, names[s])
		case <-eof:
			if child != nil {
				_ = child.Wait()
			}
			os.Exit(0)
		}
	}
}

// helper is a running counter (and its child, if asked for).
type helper struct {
	pid   int
	child int // 0 without a child
	lines chan string
}

const waitLimit = 20 * time.Second

type helperOpts struct {
	exe   string // what to exec; its base name becomes comm and argv[0]
	child bool
	cred  *syscall.Credential
	dir   string
}

// startCounter starts a counter and waits until it (and its child) can take
// signals.
func startCounter(t *testing.T, o helperOpts) *helper {
	t.Helper()
	cmd := exec.Command(o.exe, "-test.run=^TestHelperProcess$")
	cmd.Env = append(helperEnv(), "ACTION_TEST_HELPER=counter")
	if o.child {
		cmd.Env = append(cmd.Env, "ACTION_TEST_CHILD=1")
	}
	cmd.Stderr = os.Stderr
	cmd.Dir = o.dir
	if o.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if o.cred != nil {
			t.Skipf("cannot start a process as uid %d here: %v", o.cred.Uid, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the counter and its child exit on EOF
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	h := &helper{pid: cmd.Process.Pid, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ready ") || strings.HasPrefix(l, "sig ") {
				h.lines <- l
			}
		}
		close(h.lines)
	}()
	ready := 1
	if o.child {
		ready = 2
	}
	for range ready {
		l := h.next(t)
		var pid int
		if _, err := fmt.Sscanf(l, "ready %d", &pid); err != nil {
			t.Fatalf("helper said %q, want ready", l)
		}
		if pid != h.pid {
			h.child = pid
		}
	}
	if o.child && h.child == 0 {
		t.Fatal("the helper's child never reported ready")
	}
	return h
}

func (h *helper) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatal("helper exited")
		}
		return l
	case <-time.After(waitLimit):
		t.Fatalf("no line from helper within %s", waitLimit)
	}
	return ""
}

// expectSignals waits until the helper reports exactly the want lines
// ("sig <pid> <NAME>", in any order), then checks that nothing else arrived:
// it sends SIGUSR2 to each of pids as a marker and reads until every marker
// is back. Signals to a multithreaded process may be handled out of order, so
// the marker is sent only once the wanted lines are in, long after any extra
// signal from the same Run; no fixed wait is needed either way.
func (h *helper) expectSignals(t *testing.T, pids []int, want ...string) {
	t.Helper()
	pending := map[string]int{}
	for _, w := range want {
		pending[w]++
	}
	for n := len(want); n > 0; n-- {
		l := h.next(t)
		if pending[l] == 0 {
			t.Fatalf("helper reported %q; want %q", l, want)
		}
		pending[l]--
	}
	markers := map[string]bool{}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		markers[fmt.Sprintf("sig %d USR2", pid)] = true
	}
	for len(markers) > 0 {
		l := h.next(t)
		if !markers[l] {
			t.Fatalf("helper reported %q after %q: one signal too many", l, want)
		}
		delete(markers, l)
	}
}

// namedExe returns a symlink to the test binary under a name unique to this
// run, so a process-name action finds only this test's helpers even when other
// test binaries run at the same time. The name fits comm's 15 bytes.
func namedExe(t *testing.T, dir, target string) (path, name string) {
	t.Helper()
	name = fmt.Sprintf("sig-%08x", rand.Uint32())
	path = filepath.Join(dir, name)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return path, name
}

// helperEnv is the environment for a helper. Under -race a binary waits a
// second at exit unless told not to.
func helperEnv() []string {
	return append(os.Environ(), "GORACE=atexit_sleep_ms=0")
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
