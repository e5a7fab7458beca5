package render

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"syscall"
)

// Remove deletes the files at paths (those of a secret that a configuration
// reload removed) and returns how many it deleted. A path already missing is
// not an error. A symlink is removed itself, never what it points to, and a
// path through a symlink leading outside fails. A directory at a path is not
// ours to delete: it is left in place and reported. Parent directories left
// empty are removed too (up to, never including, the output directory), so
// that a later secret can write a file where one stood; a directory that is
// not empty is kept. Every directory touched is synced.
func (d *Dir) Remove(paths []string) (removed int, err error) {
	if err := d.reopenIfGone(); err != nil {
		return 0, err
	}
	var errs []error
	touched := map[string]bool{}
	for _, p := range paths {
		ok, err := d.remove(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %q: %w", p, err))
			continue
		}
		if ok {
			removed++
			touched[path.Dir(p)] = true
		}
	}
	// Deepest first, so a parent is tried after its children.
	dirs := make([]string, 0, len(touched))
	for dir := range touched {
		dirs = append(dirs, dir)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	synced := map[string]bool{}
	for _, dir := range dirs {
		for dir != "." {
			// A symlink standing for a directory is not an empty directory.
			if fi, err := d.root.Lstat(dir); err != nil || !fi.IsDir() {
				break
			}
			if err := d.root.Remove(dir); err != nil {
				// ENOTEMPTY or EEXIST: still in use; anything else is a
				// directory we leave as it is.
				break
			}
			dir = path.Dir(dir)
		}
		if !synced[dir] {
			synced[dir] = true
			if err := d.syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove: %w", err))
			}
		}
	}
	return removed, errors.Join(errs...)
}

// remove deletes one file; ok is false when it was already gone.
func (d *Dir) remove(p string) (ok bool, err error) {
	if err := CheckPath(p); err != nil {
		return false, err
	}
	fi, err := d.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		return false, fmt.Errorf("is a directory, which the agent does not remove")
	}
	if err := d.root.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
