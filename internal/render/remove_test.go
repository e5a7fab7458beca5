package render

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tree lists every entry under root but the lock file, directories with a
// trailing slash, symlinks with their target.
func tree(t *testing.T, root string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == "." || rel == lockName:
		case e.IsDir():
			out = append(out, rel+"/")
		case e.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		default:
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// A secret dropped by a configuration reload loses its files (issue 9 #12);
// directories it leaves empty go too, others stay.
func TestRemoveDeletesFilesAndEmptyParents(t *testing.T) {
	d, root := openTestDir(t)
	for _, p := range []string{"A", "sub/B", "sub/C", "deep/x/y/Z", "shared/S1", "shared/S2"} {
		mustWrite(t, d, newFile(p, "hunter2", 0o444))
	}
	if err := os.Mkdir(filepath.Join(root, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := d.Remove([]string{"A", "sub/B", "deep/x/y/Z", "shared/S1", "missing", "gone/dir/f", "A/below-a-file"})
	if n != 4 || err != nil {
		t.Fatalf("Remove = %d, %v; want 4, nil", n, err)
	}
	if got, want := tree(t, root), "app/ shared/ shared/S2 sub/ sub/C"; got != want {
		t.Errorf("left:\n%s\nwant:\n%s", got, want)
	}
	// Again: all gone already.
	if n, err := d.Remove([]string{"A", "sub/B"}); n != 0 || err != nil {
		t.Errorf("second Remove = %d, %v; want 0, nil", n, err)
	}
	// The last file at the top leaves the output directory (and its lock) in place.
	if n, err := d.Remove([]string{"shared/S2", "sub/C"}); n != 2 || err != nil {
		t.Fatalf("Remove = %d, %v; want 2, nil", n, err)
	}
	if got, want := tree(t, root), "app/"; got != want {
		t.Errorf("left:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Lstat(filepath.Join(root, lockName)); err != nil {
		t.Errorf("lock file gone: %v", err)
	}
}

func TestRemoveNeverLeavesTheDirectory(t *testing.T) {
	d, root := openTestDir(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "f")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link": victim, "linkdir": outside, "alias": "real"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "adir/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, newFile("real/f", "x", 0o444))

	n, err := d.Remove([]string{"link", "linkdir/f", "adir", "alias/f", "../x", ".", ".agent.lock"})
	want := strings.Join([]string{
		`remove "linkdir/f": statat linkdir/f: path escapes from parent`,
		`remove "adir": is a directory, which the agent does not remove`,
		`remove "../x": path "../x" must stay inside the output directory`,
		`remove ".": path "." has a "." element`,
		`remove ".agent.lock": path ".agent.lock" is the agent's lock file`,
	}, "\n")
	if n != 2 || err == nil || err.Error() != want {
		t.Errorf("Remove = %d, %v\nwant 2,\n%s", n, err, want)
	}
	// The symlink itself went, not its target; through a symlink inside,
	// the file went but not the symlink.
	if got, want := tree(t, root), "adir/ adir/inner/ alias -> real linkdir -> "+outside+" real/"; got != want {
		t.Errorf("left:\n%s\nwant:\n%s", got, want)
	}
	checkFile(t, victim, "keep", 0o644)
}

// Remove works on the directory now at the path, like WriteAll.
func TestRemoveAfterDirectoryRemoved(t *testing.T) {
	d, root := openTestDir(t)
	mustWrite(t, d, newFile("A", "x", 0o444))
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Remove([]string{"A"}); n != 0 || err != nil {
		t.Errorf("Remove = %d, %v; want 0, nil", n, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Errorf("output directory not recreated: %v", err)
	}
}
