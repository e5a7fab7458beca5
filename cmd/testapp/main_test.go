package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the test binary as testapp when the compose-free test below
// starts it as a child.
func TestMain(m *testing.M) {
	if os.Getenv("TESTAPP_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestMarkers(t *testing.T) {
	secrets, empty := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "DB_PASSWORD"), []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-dir", secrets, "-env", "APP_TOKEN,UNSET_ONE", "-ls", secrets+","+empty+",/nonexistent",
		"DB_PASSWORD", "MISSING")
	cmd.Env = append(os.Environ(), "TESTAPP_AS_MAIN=1", "APP_TOKEN=a'b\nc")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := bufio.NewScanner(out)
	next := func() Marker {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("no marker line; stderr: %s", stderr.Bytes())
		}
		rest, ok := strings.CutPrefix(lines.Text(), "TESTAPP ")
		if !ok {
			t.Fatalf("not a marker line: %q", lines.Text())
		}
		var m Marker
		if err := json.Unmarshal([]byte(rest), &m); err != nil {
			t.Fatalf("marker %q: %v", rest, err)
		}
		return m
	}

	start := next()
	if start.Event != "start" || start.PID != cmd.Process.Pid || start.PPID != os.Getpid() || start.UID != os.Getuid() {
		t.Errorf("start marker %+v: want event start, pid %d, ppid %d, uid %d", start, cmd.Process.Pid, os.Getpid(), os.Getuid())
	}
	if got := start.Values["DB_PASSWORD"]; got != "one" {
		t.Errorf("values[DB_PASSWORD] = %q, want %q", got, "one")
	}
	if got := start.Values["MISSING"]; !strings.HasPrefix(got, "!error: ") {
		t.Errorf("values[MISSING] = %q, want an !error", got)
	}
	if want := map[string]string{"APP_TOKEN": "a'b\nc"}; !reflect.DeepEqual(start.Env, want) {
		t.Errorf("env = %q, want %q (an unset variable is absent)", start.Env, want)
	}
	if got := start.Dirs[secrets]; !reflect.DeepEqual(got, []string{"DB_PASSWORD"}) {
		t.Errorf("dirs[%s] = %q, want [DB_PASSWORD]", secrets, got)
	}
	if got := start.Dirs[empty]; got == nil || len(got) != 0 {
		t.Errorf("dirs[%s] = %#v, want an empty list", empty, got)
	}
	if got := start.Dirs["/nonexistent"]; len(got) != 1 || !strings.HasPrefix(got[0], "!error: ") {
		t.Errorf("dirs[/nonexistent] = %q, want one !error", got)
	}

	// SIGHUP: read again.
	if err := os.WriteFile(filepath.Join(secrets, "DB_PASSWORD"), []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if reload := next(); reload.Event != "reload" || reload.Values["DB_PASSWORD"] != "two" || reload.PID != start.PID {
		t.Errorf("after SIGHUP: %+v, want a reload marker from pid %d with DB_PASSWORD two", reload, start.PID)
	}

	// SIGTERM: exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0; stderr: %s", err, stderr.Bytes())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("testapp did not exit within 10s of SIGTERM")
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"nothing to read", nil},
		{"empty env list", []string{"-env", ","}},
		{"unknown flag", []string{"-nope", "A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("run(%q) = %d, want 2", tc.args, code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
