package render

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func openTestDir(t *testing.T) (*Dir, string) {
	t.Helper()
	path := t.TempDir()
	d, err := OpenDir(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, path
}

func newFile(path, data string, mode fs.FileMode) File {
	return File{Path: path, Data: secret.FromString(data), Mode: mode, UID: -1, GID: -1}
}

func mustWrite(t *testing.T, d *Dir, f File) bool {
	t.Helper()
	changed, err := d.Write(f)
	if err != nil {
		t.Fatalf("Write(%q): %v", f.Path, err)
	}
	return changed
}

func stat(t *testing.T, path string) (fs.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi, fi.Sys().(*syscall.Stat_t)
}

// checkFile asserts path is a regular file with exactly data and mode.
func checkFile(t *testing.T, path, data string, mode fs.FileMode) {
	t.Helper()
	fi, _ := stat(t, path)
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != data {
		t.Errorf("%s: content %.40q (%d bytes), want %.40q (%d bytes)", path, got, len(got), data, len(data))
	}
}

// withUmask sets a strict umask so expectations cannot depend on the default.
// The umask is per process, so tests using it do not run in parallel.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestWriteBytesAndModes(t *testing.T) {
	withUmask(t, 0o077)
	d, root := openTestDir(t)
	tests := []struct {
		name, path, data string
		mode             fs.FileMode
	}{
		{"docker default", "DB_PASSWORD", "hunter2", 0o444},
		{"owner only", "key.pem", "-----BEGIN KEY-----\n", 0o400},
		{"group read", "group", "x", 0o640},
		{"executable", "run.sh", "#!/bin/sh\n", 0o755},
		{"unusual", "unusual", "x", 0o604},
		{"empty", "empty", "", 0o444},
		{"binary", "bin", "\x00\xff\x01'\"\n", 0o444},
		{"large", "large", strings.Repeat("0123456789abcdef", 1<<16), 0o444},
		{"nested", "a/b/c/deep.txt", "deep", 0o444},
		{"dot file", ".env", "A='b'\n", 0o444},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !mustWrite(t, d, newFile(tt.path, tt.data, tt.mode)) {
				t.Error("first write reported changed=false")
			}
			checkFile(t, filepath.Join(root, tt.path), tt.data, tt.mode)
		})
	}
	// Parents are 0o755 whatever the umask, so an app running as another
	// user can reach its files.
	for _, dir := range []string{"a", "a/b", "a/b/c"} {
		if fi, _ := stat(t, filepath.Join(root, dir)); fi.Mode() != fs.ModeDir|0o755 {
			t.Errorf("%s: mode %v, want drwxr-xr-x", dir, fi.Mode())
		}
	}
	assertNoTemps(t, root)
}

func TestWriteUnchanged(t *testing.T) {
	d, root := openTestDir(t)
	f := newFile("sub/DB", "hunter2", 0o444)
	mustWrite(t, d, f)
	target := filepath.Join(root, "sub/DB")
	// Backdate so that any rewrite would show as a new mtime.
	old := time.Unix(1_000_000_000, 0)
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	_, before := stat(t, target)
	if mustWrite(t, d, f) {
		t.Error("rewrite of the same content reported changed=true")
	}
	fi, after := stat(t, target)
	if after.Ino != before.Ino || !fi.ModTime().Equal(old) {
		t.Errorf("file was touched: inode %d→%d, mtime %v", before.Ino, after.Ino, fi.ModTime())
	}
	assertNoTemps(t, root)
}

func TestWriteChanged(t *testing.T) {
	tests := []struct {
		name   string
		before File
		after  File
	}{
		{"content", newFile("f", "old", 0o444), newFile("f", "new", 0o444)},
		{"longer", newFile("f", "old", 0o444), newFile("f", "older", 0o444)},
		{"shorter", newFile("f", "older", 0o444), newFile("f", "old", 0o444)},
		{"to empty", newFile("f", "old", 0o444), newFile("f", "", 0o444)},
		{"mode", newFile("f", "same", 0o444), newFile("f", "same", 0o400)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, root := openTestDir(t)
			mustWrite(t, d, tt.before)
			target := filepath.Join(root, tt.after.Path)
			_, before := stat(t, target)
			if !mustWrite(t, d, tt.after) {
				t.Fatal("changed=false")
			}
			checkFile(t, target, string(tt.after.Data.Bytes()), tt.after.Mode)
			// A new inode shows the file was replaced by rename, not rewritten
			// in place (a reader could then see it half-written).
			if _, after := stat(t, target); after.Ino == before.Ino {
				t.Error("same inode: file was modified in place")
			}
		})
	}
}

// Content changed behind our back (same size) is noticed and repaired.
func TestWriteRepairsTamperedFile(t *testing.T) {
	d, root := openTestDir(t)
	f := newFile("f", "hunter2", 0o444)
	mustWrite(t, d, f)
	target := filepath.Join(root, "f")
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("HUNTER2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o444); err != nil {
		t.Fatal(err)
	}
	if !mustWrite(t, d, f) {
		t.Fatal("changed=false for tampered content")
	}
	checkFile(t, target, "hunter2", 0o444)
}

func TestWriteErrors(t *testing.T) {
	const data = "s3cr3t-value"
	d, root := openTestDir(t)
	if err := os.Mkdir(filepath.Join(root, "isdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "isfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file File
		want string // prefix of the error
	}{
		{"bad path", newFile("../x", data, 0o444), `path "../x" must stay inside the output directory`},
		{"absolute", newFile("/etc/x", data, 0o444), `path "/etc/x" must be relative to the output directory`},
		{"bad mode", newFile("x", data, fs.ModeSymlink|0o444), `write "x": mode Lr--r--r-- is not just permission bits`},
		{"setuid", newFile("x", data, fs.ModeSetuid|0o755), `write "x": mode urwxr-xr-x is not just permission bits`},
		{"target is a directory", newFile("isdir", data, 0o444), `write "isdir": rename temp file: `},
		{"parent is a file", newFile("isfile/x", data, 0o444), `write "isfile/x": create temp file: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := d.Write(tt.file)
			if err == nil || changed {
				t.Fatalf("Write = %v, %v; want error", changed, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), data) {
				t.Errorf("error %q shows the data", err)
			}
		})
	}
	assertNoTemps(t, root)
}

func TestWritePlantedSymlinkFile(t *testing.T) {
	d, root := openTestDir(t)
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(root, "other")
	if err := os.WriteFile(inside, []byte("hunter2"), 0o444); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs":      outside,                        // absolute, outside
		"rel":      "../" + filepath.Base(outside), // relative, outside (dangling here)
		"same":     "other",                        // inside, already the wanted content
		"dangling": "nowhere",                      // points at nothing
	}
	for name, target := range links {
		t.Run(name, func(t *testing.T) {
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
			if !mustWrite(t, d, newFile(name, "hunter2", 0o444)) {
				t.Error("changed=false over a symlink")
			}
			checkFile(t, filepath.Join(root, name), "hunter2", 0o444)
		})
	}
	checkFile(t, outside, "original", 0o644)
	checkFile(t, inside, "hunter2", 0o444)
}

func TestWritePlantedSymlinkDir(t *testing.T) {
	d, root := openTestDir(t)
	outside := t.TempDir()
	for _, target := range []string{outside, "../" + filepath.Base(outside)} {
		t.Run(target, func(t *testing.T) {
			link := filepath.Join(root, "sub")
			_ = os.Remove(link)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"sub/x", "sub/new/x"} {
				_, err := d.Write(newFile(path, "hunter2", 0o444))
				if err == nil || !strings.Contains(err.Error(), `write "`+path+`"`) || !strings.Contains(err.Error(), "path escapes from parent") {
					t.Errorf("Write(%q) error = %v; want one naming the path and the escape", path, err)
				}
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside the output directory: %v", entries)
			}
		})
	}
}

// assertNoTemps fails if any temp file is left under root.
func assertNoTemps(t *testing.T, root string) {
	t.Helper()
	for _, p := range findTemps(t, root) {
		t.Errorf("temp file left behind: %s", p)
	}
}

func findTemps(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && isTempName(e.Name()) {
			found = append(found, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestOpenDirRemovesTemps(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	files := map[string]bool{ // path → should survive
		".DB.agent-tmp-0123456789abcdef":       false,
		"a/b/.x.agent-tmp-fedcba9876543210":    false,
		".env":                                 true,
		".DB.agent-tmp-short":                  true,
		"DB":                                   true,
		"a/.hidden":                            true,
		"a/b/x.agent-tmp-fedcba9876543210":     true, // no leading dot: not ours
		".DB.agent-tmp-0123456789ABCDEF":       true, // upper case: not ours
		".DB.agent-tmp-0123456789abcdef.extra": true,
	}
	for p := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A temp-looking file reached only through a symlinked directory is not
	// ours, and a temp-named symlink or directory is left alone.
	victim := filepath.Join(outside, ".v.agent-tmp-0123456789abcdef")
	if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("DB", filepath.Join(root, ".l.agent-tmp-0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, ".d.agent-tmp-0123456789abcdef"), 0o755); err != nil {
		t.Fatal(err)
	}

	d, err := OpenDir(t.Context(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for p, keep := range files {
		_, err := os.Lstat(filepath.Join(root, p))
		if exists := err == nil; exists != keep {
			t.Errorf("%s: exists=%v, want %v", p, exists, keep)
		}
	}
	for _, p := range []string{victim, filepath.Join(root, ".l.agent-tmp-0123456789abcdef"), filepath.Join(root, ".d.agent-tmp-0123456789abcdef")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

func TestOpenDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "run", "secrets")
	d, err := OpenDir(t.Context(), missing, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("OpenDir did not create %s: %v", missing, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(t.Context(), file, nil); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("OpenDir(file) error = %v, want one naming %s", err, file)
	}
}

func TestWriteOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; run the tests as root to cover UID/GID")
	}
	d, root := openTestDir(t)
	target := filepath.Join(root, "owned")
	check := func(uid, gid uint32) {
		t.Helper()
		if _, st := stat(t, target); st.Uid != uid || st.Gid != gid {
			t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
		}
	}
	f := File{Path: "owned", Data: secret.FromString("x"), Mode: 0o440, UID: 1234, GID: 5678}
	if !mustWrite(t, d, f) {
		t.Fatal("changed=false")
	}
	check(1234, 5678)
	checkFile(t, target, "x", 0o440)
	if mustWrite(t, d, f) {
		t.Error("same owner reported changed=true")
	}
	f.GID = 999
	if !mustWrite(t, d, f) {
		t.Error("new gid reported changed=false")
	}
	check(1234, 999)
	// -1 leaves the owner as created: root here, which differs from 1234.
	f.UID, f.GID = -1, -1
	if mustWrite(t, d, f) {
		t.Error("-1/-1 with same content reported changed=true")
	}
	f.UID = 0
	if !mustWrite(t, d, f) {
		t.Error("uid 0 over uid 1234 reported changed=false")
	}
	check(0, 0)
}

func TestWriteEqualBytes(t *testing.T) {
	d, root := openTestDir(t)
	data := bytes.Repeat([]byte{0, 0xff}, 1000)
	mustWrite(t, d, File{Path: "bin", Data: secret.New(data), Mode: 0o444, UID: -1, GID: -1})
	if mustWrite(t, d, File{Path: "bin", Data: secret.New(bytes.Clone(data)), Mode: 0o444, UID: -1, GID: -1}) {
		t.Error("changed=true for equal binary content")
	}
	checkFile(t, filepath.Join(root, "bin"), string(data), 0o444)
}
