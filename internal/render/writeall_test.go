package render

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAll(t *testing.T) {
	d, dir := openTestDir(t)
	var files []File
	for i := range 40 {
		// Shared parent directories are created by concurrent writers.
		files = append(files, newFile(fmt.Sprintf("d%d/sub/f%02d", i%3, i), fmt.Sprintf("value %d", i), 0o440))
	}
	changed, err := d.WriteAll(files)
	if err != nil || changed != 40 {
		t.Fatalf("WriteAll = %d, %v; want 40, nil", changed, err)
	}
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil || string(b) != fmt.Sprintf("value %d", i) {
			t.Errorf("%s = %q, %v", f.Path, b, err)
		}
	}
	files[7] = newFile("d1/sub/f07", "new", 0o440)
	files[9] = newFile("../escape", "x", 0o440)
	files[11] = newFile("d2/sub/f11/../x", "x", 0o440)
	changed, err = d.WriteAll(files)
	if changed != 1 {
		t.Errorf("changed = %d, want 1", changed)
	}
	want := `path "../escape" must stay inside the output directory` + "\n" + `path "d2/sub/f11/../x" must stay inside the output directory`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
