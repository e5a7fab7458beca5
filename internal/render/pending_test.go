package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestPendingNote(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := d.Pending(); b != nil || err != nil {
		t.Fatalf("Pending() with no note = %q, %v", b, err)
	}
	if err := d.ClearPending(); err != nil {
		t.Fatalf("ClearPending() with no note: %v", err)
	}
	// A symlink planted under the note's name is replaced, never followed.
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, pendingName)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pending(); err == nil {
		t.Error("Pending() read a symlink")
	}
	note := []byte(`{"changed":["A"]}`)
	if err := d.SetPending(note); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, pendingName))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("note: %v, mode %v; want a regular file 0600", err, fi.Mode())
	}
	if b, err := d.Pending(); !bytes.Equal(b, note) || err != nil {
		t.Errorf("Pending() = %q, %v", b, err)
	}
	if !IsAgentFile(pendingName) {
		t.Error("the note is taken for an output file: writing it would trigger a repair")
	}
	if err := d.ClearPending(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, pendingName)); !os.IsNotExist(err) {
		t.Errorf("note still there after ClearPending: %v", err)
	}
	// A note too big for an agent to have written is not read.
	if err := os.WriteFile(filepath.Join(dir, pendingName), make([]byte, maxPendingNote+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := d.Pending(); b != nil || err == nil {
		t.Errorf("Pending() of an oversized note = %d bytes, %v", len(b), err)
	}
}
