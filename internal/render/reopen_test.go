package render

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A removed or replaced output directory is reopened: the next WriteAll puts
// every file into the directory now at the path, not the deleted one.
func TestWriteAllReopensRemovedDir(t *testing.T) {
	files := []File{
		newFile("DB_PASSWORD", "hunter2", 0o444),
		newFile("api/key.txt", "k3y\n", 0o400),
		newFile(".env", "DB_PASSWORD='hunter2'\n", 0o440),
	}
	tests := []struct {
		name   string
		made   bool // the agent makes the new directory, so its mode is 0o755
		change func(t *testing.T, dir string)
	}{
		{"removed", true, func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed with its parent", true, func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by an empty directory", false, func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"renamed away and replaced", false, func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withUmask(t, 0o077)
			dir := filepath.Join(t.TempDir(), "run", "secrets")
			d, err := OpenDir(t.Context(), dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if n, err := d.WriteAll(files); n != 3 || err != nil {
				t.Fatalf("first WriteAll = %d, %v; want 3, nil", n, err)
			}
			tt.change(t, dir)
			if n, err := d.WriteAll(files); n != 3 || err != nil {
				t.Fatalf("WriteAll after the change = %d, %v; want 3, nil", n, err)
			}
			checkFile(t, filepath.Join(dir, "DB_PASSWORD"), "hunter2", 0o444)
			checkFile(t, filepath.Join(dir, "api/key.txt"), "k3y\n", 0o400)
			checkFile(t, filepath.Join(dir, ".env"), "DB_PASSWORD='hunter2'\n", 0o440)
			if fi, _ := stat(t, dir); tt.made && fi.Mode() != os.ModeDir|0o755 {
				t.Errorf("recreated directory mode %v, want drwxr-xr-x", fi.Mode())
			}
			if fi, _ := stat(t, filepath.Dir(dir)); tt.made && fi.Mode() != os.ModeDir|0o755 {
				t.Errorf("recreated parent mode %v, want drwxr-xr-x", fi.Mode())
			}
			// The lock moved with the directory: another agent waits on it.
			if _, err := os.Lstat(filepath.Join(dir, lockName)); err != nil {
				t.Errorf("no lock file in the new directory: %v", err)
			}
			// Nothing changed since: no rewrite, no reopen loop.
			if n, err := d.WriteAll(files); n != 0 || err != nil {
				t.Errorf("third WriteAll = %d, %v; want 0, nil", n, err)
			}
			assertNoTemps(t, dir)
		})
	}
}

// Write alone (not only WriteAll) notices the removal too.
func TestWriteReopensRemovedDir(t *testing.T) {
	d, dir := openTestDir(t)
	mustWrite(t, d, newFile("a", "1", 0o444))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if !mustWrite(t, d, newFile("a", "1", 0o444)) {
		t.Error("changed=false after the directory was removed")
	}
	checkFile(t, filepath.Join(dir, "a"), "1", 0o444)
}

// If another agent took the recreated directory meanwhile, the write fails
// at once, naming it, and writes nothing there.
func TestWriteAllRecreatedDirHeldByAnother(t *testing.T) {
	d, dir := openTestDir(t)
	mustWrite(t, d, newFile("A", "1", 0o444))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	other, err := OpenDir(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	holder, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	n, err := d.WriteAll([]File{newFile("A", "1", 0o444)})
	want := fmt.Sprintf("output directory %q was removed or replaced, and reopening it failed: output directory %q is in use by another agent (%q holds .agent.lock; one agent per output directory): a write does not wait for it",
		dir, dir, strings.TrimSpace(string(holder)))
	if n != 0 || err == nil || err.Error() != want {
		t.Errorf("WriteAll = %d, %v\nwant 0,\n%s", n, err, want)
	}
	if _, err := os.Lstat(filepath.Join(dir, "A")); err == nil {
		t.Error("wrote into a directory another agent holds")
	}
}
