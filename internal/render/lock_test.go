package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testDeadline bounds a wait that should end at once; it is a deadline for
// a hung test, not a speed assertion.
const testDeadline = 30 * time.Second

// A second OpenDir on a held directory waits, says who holds it, and
// proceeds when the holder closes.
func TestOpenDirWaitsForLockHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	first, err := OpenDir(t.Context(), dir, func(string) { t.Error("first OpenDir waited") })
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, first, newFile("DB", "old", 0o444))
	holder, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if want := fmt.Sprintf("pid %d on host %s since ", os.Getpid(), host); !strings.HasPrefix(string(holder), want) {
		t.Errorf("lock file holds %q, want it to start with %q", holder, want)
	}

	waiting := make(chan string, 1)
	type result struct {
		d   *Dir
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := OpenDir(t.Context(), dir, func(h string) { waiting <- h })
		done <- result{d, err}
	}()
	select {
	case h := <-waiting:
		if want := strings.TrimSpace(string(holder)); h != want {
			t.Errorf("waiting(%s), want waiting(%s)", h, want)
		}
	case r := <-done:
		t.Fatalf("second OpenDir returned (%v) while the first holds the directory", r.err)
	case <-time.After(testDeadline):
		t.Fatal("second OpenDir neither waited nor returned")
	}
	// waiting was called, so the second is in its wait loop: until the lock
	// is free it cannot have returned.
	select {
	case r := <-done:
		t.Fatalf("second OpenDir returned (%v) while the first holds the directory", r.err)
	default:
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	var second *Dir
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("second OpenDir after Close: %v", r.err)
		}
		second = r.d
	case <-time.After(testDeadline):
		t.Fatal("second OpenDir still waits after the first closed")
	}
	defer second.Close()
	if !mustWrite(t, second, newFile("DB", "new", 0o444)) {
		t.Error("changed=false")
	}
	checkFile(t, filepath.Join(dir, "DB"), "new", 0o444)
}

// An agent that cannot get the lock before its deadline says which
// directory, who holds it, and why it stopped waiting.
func TestOpenDirLockWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenDir(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	holder, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	d, err := OpenDir(ctx, dir, func(string) { calls++; cancel() })
	if d != nil {
		t.Fatal("OpenDir returned a Dir while another holds the lock")
	}
	want := fmt.Sprintf("output directory %q is in use by another agent (%q holds .agent.lock; one agent per output directory): context canceled",
		dir, strings.TrimSpace(string(holder)))
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v is not context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("waiting called %d times, want 1", calls)
	}
}

// The lock file is ours alone: not a destination, and a symlink (here to a
// secret's file) or a FIFO planted in its place is refused, never locked
// or overwritten.
func TestOpenDirRefusesPlantedLockFile(t *testing.T) {
	plants := map[string]func(string) error{
		"symlink": func(p string) error { return os.Symlink("DB", p) },
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o644) },
	}
	for name, plant := range plants {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "DB"), []byte("hunter2"), 0o444); err != nil {
				t.Fatal(err)
			}
			if err := plant(filepath.Join(dir, lockName)); err != nil {
				t.Fatal(err)
			}
			_, err := OpenDir(t.Context(), dir, nil)
			want := fmt.Sprintf("output directory %q: lock file .agent.lock: is not a regular file; remove it", dir)
			if err == nil || err.Error() != want {
				t.Errorf("error:\n%v\nwant:\n%s", err, want)
			}
			checkFile(t, filepath.Join(dir, "DB"), "hunter2", 0o444)
		})
	}
}

const (
	helperLockedDirEnv   = "RENDER_TEST_HELPER_LOCKED_DIR"
	helperLockedIndexEnv = "RENDER_TEST_HELPER_LOCKED_INDEX"
	lockedFiles          = 12
)

func lockedContent(writer, file int) string {
	return fmt.Sprintf("writer %02d file %02d %s\n", writer, file, strings.Repeat("x", 100*file))
}

// TestHelperLockedWriter is not a test: TestOpenDirParallelProcesses runs
// the test binary with only this one, as one of many agents that open the
// same directory, write a full set of files and close it.
func TestHelperLockedWriter(t *testing.T) {
	dir := os.Getenv(helperLockedDirEnv)
	if dir == "" {
		t.Skip("helper process for TestOpenDirParallelProcesses")
	}
	k, err := strconv.Atoi(os.Getenv(helperLockedIndexEnv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	d, err := OpenDir(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var files []File
	for i := range lockedFiles {
		files = append(files, newFile(fmt.Sprintf("sub/f%02d", i), lockedContent(k, i), 0o444))
	}
	if n, err := d.WriteAll(files); err != nil || n != lockedFiles {
		t.Fatalf("WriteAll = %d, %v; want %d, nil", n, err, lockedFiles)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// 90 agents started together on one directory (90 parallel init
// containers, issue 12 #10) all succeed, and the files end up as one of
// them wrote them all, never a mix: the lock serialises whole sessions,
// so no start-up sweep deletes another's temp files.
func TestOpenDirParallelProcesses(t *testing.T) {
	const agents = 90
	dir := filepath.Join(t.TempDir(), "secrets")
	cmds := make([]*exec.Cmd, agents)
	outs := make([]strings.Builder, agents)
	for k := range agents {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLockedWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperLockedDirEnv+"="+dir, helperLockedIndexEnv+"="+strconv.Itoa(k))
		cmd.Stdout, cmd.Stderr = &outs[k], &outs[k]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[k] = cmd
	}
	failed := 0
	for k, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			failed++
			t.Errorf("agent %d: %v\n%s", k, err, outs[k].String())
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d agents failed", failed, agents)
	}
	first, err := os.ReadFile(filepath.Join(dir, "sub/f00"))
	if err != nil {
		t.Fatal(err)
	}
	var last int
	if _, err := fmt.Sscanf(string(first), "writer %d", &last); err != nil {
		t.Fatalf("sub/f00 = %.40q: %v", first, err)
	}
	for i := range lockedFiles {
		checkFile(t, filepath.Join(dir, fmt.Sprintf("sub/f%02d", i)), lockedContent(last, i), 0o444)
	}
	assertNoTemps(t, dir)
}
