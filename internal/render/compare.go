package render

import (
	"bytes"
	"io"
	"os"
	"syscall"
)

// unchanged reports whether f.Path already is a regular file with f's bytes,
// mode and (where set) owner. Any doubt, such as a symlink, a missing or
// unreadable file, counts as changed: rewriting is always safe.
func (d *Dir) unchanged(f File) bool {
	lfi, err := d.root.Lstat(f.Path)
	if err != nil || !lfi.Mode().IsRegular() || lfi.Size() != int64(f.Data.Len()) {
		return false
	}
	// Root.OpenFile follows a final symlink, so check that what we opened is
	// what Lstat saw. O_NONBLOCK: a FIFO swapped in meanwhile must not hang us.
	fh, err := d.root.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil || !os.SameFile(lfi, fi) || fi.Mode() != f.Mode || !ownedBy(fi, f.UID, f.GID) {
		return false
	}
	want := f.Data.Bytes()
	got := make([]byte, len(want)+1) // one more to notice a file that grew
	n, err := io.ReadFull(fh, got)
	if err != io.ErrUnexpectedEOF && !(err == io.EOF && len(want) == 0) {
		return false
	}
	return bytes.Equal(got[:n], want)
}
