package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A deleted output directory is recreated and refilled (issue 12 #2), by the
// file watch's repair, with no AWS call; and again after that, since the
// recreated directory is watched too.
func TestRunRecreatesRemovedOutputDir(t *testing.T) {
	f := newFixture(t)
	a := f.value("a")
	f.fake.PutParameter(region, "/a", a, true)
	s := startSidecar(t, append(f.fake.Env(region), `AGENT_CONFIG={"secrets":[{"name":"A","valueFrom":"/a","file":"sub/A","mode":"0440"}],"envFile":"all.env","refresh":{"interval":"1h"}}`),
		"--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	f.fake.ResetCounts()
	env := "A='" + strings.ReplaceAll(a, "'", `'\''`) + "'\n"
	back := func(what string) {
		t.Helper()
		eventually(t, what, 10*time.Second, func() bool {
			fi, err := os.Stat(filepath.Join(f.out, "sub/A"))
			got, err2 := os.ReadFile(filepath.Join(f.out, "all.env"))
			got2, err3 := os.ReadFile(filepath.Join(f.out, "sub/A"))
			return err == nil && err2 == nil && err3 == nil && fi.Mode() == 0o440 && string(got) == env && string(got2) == a
		})
		assertFile(t, filepath.Join(f.out, "sub/A"), a, 0o440)
		assertFile(t, filepath.Join(f.out, "all.env"), env, 0o444)
		if got := listDir(t, f.out); strings.Join(got, " ") != "all.env sub sub/A" {
			t.Errorf("%s: files %v", what, got)
		}
	}
	if err := os.RemoveAll(f.out); err != nil {
		t.Fatal(err)
	}
	back("files back after the directory was removed")
	// Changes in the recreated directory are seen: it is watched. Two in
	// turn, so a repair pass still pending from the removal cannot pass
	// for both.
	if err := os.Chmod(filepath.Join(f.out, "sub/A"), 0o666); err != nil {
		t.Fatal(err)
	}
	back("sub/A's mode restored in the recreated directory")
	if err := os.Chmod(filepath.Join(f.out, "all.env"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.out, "all.env"), []byte("tampered"), 0o666); err != nil {
		t.Fatal(err)
	}
	back("all.env restored in the recreated directory")
	if err := os.RemoveAll(f.out); err != nil {
		t.Fatal(err)
	}
	back("files back after the directory was removed again")
	if n := len(f.fake.CallLog()); n != 0 {
		t.Errorf("repairs made %d AWS calls", n)
	}
	s.stop(t)
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}

// Two sidecars on one output directory (issue 12 #10) used to flip a
// rotated file between values. The second now waits: not ready, says which
// agent holds the directory, exits 1 at its start-up deadline, and never
// writes.
func TestRunSecondSidecarOnSameOutputDirWaits(t *testing.T) {
	f := newFixture(t)
	a := f.value("a")
	f.fake.PutParameter(region, "/a", a, true)
	conf := `AGENT_CONFIG={"secrets":[{"name":"A","valueFrom":"/a"}],"refresh":{"interval":"1h"}}`
	first := startSidecar(t, append(f.fake.Env(region), conf), "--output-dir", f.out)
	eventually(t, "first ready", 30*time.Second, func() bool { code, _ := first.get(t, "/readyz"); return code == 200 })
	before, err := os.Stat(filepath.Join(f.out, "A"))
	if err != nil {
		t.Fatal(err)
	}

	second := startSidecar(t, append(f.fake.Env(region), conf), "--output-dir", f.out, "--timeout", "3s")
	eventually(t, "second says it waits", 30*time.Second, func() bool {
		return strings.Contains(second.logs(), `"msg":"waiting for the output directory: another agent holds its lock"`)
	})
	// It may already have exited at its deadline on a slow machine.
	select {
	case <-second.exited:
	default:
		if code, body := second.get(t, "/readyz"); code != 503 {
			t.Errorf("second /readyz = %d %s, want 503 while it waits", code, body)
		}
	}
	select {
	case <-second.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("second still running past its start-up deadline\n%s", second.logs())
	}
	var ee *exec.ExitError
	if !errors.As(second.exitErr, &ee) || ee.ExitCode() != 1 {
		t.Errorf("second exit %v, want 1\n%s", second.exitErr, second.logs())
	}
	if want := `is in use by another agent (\"pid ` + strconv.Itoa(first.cmd.Process.Pid) + ` on host `; !strings.Contains(second.logs(), want) {
		t.Errorf("second's logs do not name the holder (%s):\n%s", want, second.logs())
	}
	after, err := os.Stat(filepath.Join(f.out, "A"))
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("A was replaced while the first agent held the directory: %v", err)
	}
	first.stop(t)
	assertNoSecrets(t, "stderr", first.logs()+second.logs(), f.secrets)
}
