package render

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Two contents of different lengths: a torn or in-place write would show as
// a prefix of one, a mix, or an empty file.
var (
	contentA = strings.Repeat("a", 65536)
	contentB = strings.Repeat("b", 10)
)

func isWhole(b []byte) bool { return string(b) == contentA || string(b) == contentB }

func TestWriteAtomicForReaders(t *testing.T) {
	root := fastTempDir(t)
	d, err := OpenDir(t.Context(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mustWrite(t, d, newFile("target", contentA, 0o444))
	target := filepath.Join(root, "target")

	stop := make(chan struct{})
	result := make(chan error)
	go func() {
		reads := 0
		for {
			select {
			case <-stop:
				if reads == 0 {
					result <- fmt.Errorf("reader never ran")
					return
				}
				result <- nil
				return
			default:
			}
			got, err := os.ReadFile(target)
			if err != nil {
				result <- fmt.Errorf("read %d: %w", reads, err)
				return
			}
			if !isWhole(got) {
				result <- fmt.Errorf("read %d saw %d bytes starting %.20q: not one of the two contents", reads, len(got), got)
				return
			}
			reads++
		}
	}()

	var readerErr error
	for i := range 2000 {
		content := contentB
		if i%2 == 1 {
			content = contentA
		}
		if _, err := d.Write(newFile("target", content, 0o444)); err != nil {
			close(stop)
			<-result
			t.Fatal(err)
		}
		select {
		case readerErr = <-result: // the reader stopped early: it saw a torn file
		default:
			continue
		}
		break
	}
	if readerErr == nil {
		close(stop)
		readerErr = <-result
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	assertNoTemps(t, root)
}

// fastTempDir is a temp dir on tmpfs where there is one. On ext4 each rename
// over an existing file flushes its data (auto_da_alloc), some 10 ms a write;
// what readers see of a rename is the same on every local file system.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "render-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

const helperDirEnv = "RENDER_TEST_HELPER_WRITER_DIR"

// TestHelperWriter is not a test: TestWriteAtomicWhenKilled runs the test
// binary with only this one, as a child process that rewrites a file forever
// and reports each finished write with a byte on file descriptor 3.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestWriteAtomicWhenKilled")
	}
	d, err := OpenDir(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	notify := os.NewFile(3, "notify")
	for i := 0; ; i++ {
		content := contentA
		if i%2 == 1 {
			content = contentB
		}
		if _, err := d.Write(File{Path: "target", Data: secret.FromString(content), Mode: 0o444, UID: -1, GID: -1}); err != nil {
			t.Fatal(err)
		}
		if _, err := notify.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteAtomicWhenKilled(t *testing.T) {
	dir := t.TempDir()
	strays := 0
	for i := range 50 {
		// Let the child finish 1 to 10 writes, so the kill lands at a
		// different point of a write each time.
		waitWrites := 1 + i%10
		startAndKillWriter(t, dir, waitWrites)
		got, err := os.ReadFile(filepath.Join(dir, "target"))
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if !isWhole(got) {
			t.Fatalf("kill %d: target has %d bytes starting %.20q: not one of the two contents", i, len(got), got)
		}
		strays += len(findTemps(t, dir))
	}
	t.Logf("temp files seen after the 50 kills: %d (each later removed by the next child's OpenDir)", strays)

	// The last child's leftovers are removed by the next OpenDir.
	d, err := OpenDir(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	assertNoTemps(t, dir)
}

func startAndKillWriter(t *testing.T, dir string, writes int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close() // the child holds its copy; EOF then means it exited
	buf := make([]byte, writes)
	_, readErr := io.ReadFull(r, buf)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if readErr != nil {
		t.Fatalf("writer child stopped before %d writes: %v\n%s", writes, readErr, stderr.Bytes())
	}
}
