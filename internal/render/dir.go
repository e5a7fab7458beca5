// Package render turns secret values into files in the output directory:
// dotenv, JSON and template encodings, and atomic writes that change a file
// only when its content, mode or owner differ.
package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// File is one file to write under the output directory.
type File struct {
	Path     string // slash-separated, relative to the output directory (checked with CheckPath)
	Data     secret.Value
	Mode     fs.FileMode // permission bits, e.g. 0o444; applied exactly, whatever the umask
	UID, GID int         // -1 = leave as the process creates it
}

// Dir is an output directory. Every path is resolved inside it with os.Root,
// so a symlink planted in the volume cannot redirect a write. One agent at a
// time holds it (see OpenDir). Its methods are not safe for concurrent use;
// WriteAll writes concurrently on its own.
type Dir struct {
	path string
	root *os.Root
	lock *os.File // open lockName, holding its flock
}

// OpenDir creates path if missing, opens it as a root, takes the agent's
// exclusive lock on it and removes the temp files a killed earlier run left
// behind. Two agents writing one directory would delete each other's temp
// files and flip a rotated file between old and new values, so a second one
// waits: waiting (if not nil) is called once with what the lock file says of
// the holder ("pid N on host H since T", or "" — text from a shared volume,
// to be logged as an escaped attribute), and OpenDir returns when the lock
// is free or ctx ends. The lock is released by Close or by the process's
// death.
func OpenDir(ctx context.Context, path string, waiting func(holder string)) (*Dir, error) {
	d := &Dir{path: path}
	if err := d.open(ctx, waiting); err != nil {
		return nil, err
	}
	if err := d.removeTemps(); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("output directory %q: %w", path, err)
	}
	return d, nil
}

// open (re)creates the directory, opens it and takes its lock.
func (d *Dir) open(ctx context.Context, waiting func(holder string)) error {
	if err := makeDir(d.path); err != nil {
		return fmt.Errorf("create output directory %q: %w", d.path, explain(err, d.path))
	}
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return fmt.Errorf("open output directory %q: %w", d.path, explain(err, d.path))
	}
	lock, err := acquire(ctx, root, d.path, waiting)
	if err != nil {
		_ = root.Close()
		return err
	}
	d.root, d.lock = root, lock
	return nil
}

// makeDir is os.MkdirAll, but what it creates has mode 0o755 whatever the
// umask, as mkdirs does inside the root: an app running as another user
// must reach its files, also in a directory recreated after a removal.
func makeDir(p string) error {
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(p); parent != p {
		if err := makeDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile by someone else
		}
		return err
	}
	return os.Chmod(p, 0o755)
}

// Close releases the directory and its lock.
func (d *Dir) Close() error {
	err := d.root.Close()
	_ = d.lock.Close()
	return err
}

// reopenIfGone reopens the directory when the path no longer leads to the
// one the root holds (removed, or replaced by a new one): writes through the
// old handle would go into a deleted directory that nobody can see.
func (d *Dir) reopenIfGone() error {
	here, err := d.root.Stat(".")
	if err != nil {
		return fmt.Errorf("output directory %q: %w", d.path, err)
	}
	now, err := os.Stat(d.path)
	if err == nil && os.SameFile(here, now) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("output directory %q: %w", d.path, err)
	}
	oldRoot, oldLock := d.root, d.lock
	// The holder of the new directory's lock, if any, is another agent:
	// fail this pass rather than wait inside a refresh.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("a write does not wait for it"))
	if err := d.open(ctx, nil); err != nil {
		return fmt.Errorf("output directory %q was removed or replaced, and reopening it failed: %w", d.path, err)
	}
	_ = oldRoot.Close()
	_ = oldLock.Close()
	return nil
}

// Write makes f.Path hold f.Data with f.Mode and owner. If it already does,
// the file is not touched and changed is false. Otherwise a reader sees the
// old file or the new one, never a mix, even if the process dies mid-write.
// If only the final directory sync fails, changed is true along with the
// error: the new content is already in place.
func (d *Dir) Write(f File) (changed bool, err error) {
	if err := d.reopenIfGone(); err != nil {
		return false, err
	}
	return d.write(f)
}

func (d *Dir) write(f File) (changed bool, err error) {
	if err := CheckPath(f.Path); err != nil {
		return false, err
	}
	if f.Mode&^fs.ModePerm != 0 {
		return false, fmt.Errorf("write %q: mode %v is not just permission bits", f.Path, f.Mode)
	}
	if d.unchanged(f) {
		return false, nil
	}
	renamed, err := d.replace(f)
	if err != nil {
		return renamed, fmt.Errorf("write %q: %w", f.Path, err)
	}
	return true, nil
}

// replace writes f to a temp file next to the target and renames it over the
// target. renamed reports whether the new content is in place (only the
// directory sync can fail after that).
func (d *Dir) replace(f File) (renamed bool, err error) {
	dir, base := path.Dir(f.Path), path.Base(f.Path)
	if err := d.mkdirs(dir); err != nil {
		return false, err
	}
	tmp := path.Join(dir, tempName(base))
	if err := d.writeTemp(tmp, f); err != nil {
		_ = d.root.Remove(tmp)
		return false, err
	}
	// Rename replaces a symlink at the target itself, never what it points to.
	if err := d.root.Rename(tmp, f.Path); err != nil {
		_ = d.root.Remove(tmp)
		return false, fmt.Errorf("rename temp file: %w", err)
	}
	// Without this a crash could lose the rename though Write reported success.
	if err := d.syncDir(dir); err != nil {
		return true, err
	}
	return true, nil
}

func (d *Dir) writeTemp(tmp string, f File) error {
	// O_EXCL: never open something a peer planted under our random name.
	fh, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create temp file: %w", explain(err, filepath.Join(d.path, path.Dir(tmp))))
	}
	// Handle-based chown/chmod cannot be redirected by a swapped-in symlink.
	err = writeAll(fh, f)
	if cerr := fh.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close temp file: %w", cerr)
	}
	return err
}

func writeAll(fh *os.File, f File) error {
	if _, err := fh.Write(f.Data.Bytes()); err != nil {
		// The PathError names the temp file only; the data is never in it.
		return fmt.Errorf("write temp file: %w", err)
	}
	if f.UID != -1 || f.GID != -1 {
		if err := fh.Chown(f.UID, f.GID); err != nil {
			return fmt.Errorf("chown temp file: %w", explainChown(err))
		}
	}
	// Chmod after chown: chown may clear bits, and this is umask-independent.
	if err := fh.Chmod(f.Mode); err != nil {
		return fmt.Errorf("chmod temp file: %w", err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("sync temp file: %w", err)
	}
	return nil
}

// mkdirs creates dir and its parents inside the root with mode 0o755 exactly,
// so an app running as another user can reach its files whatever our umask.
func (d *Dir) mkdirs(dir string) error {
	if dir == "." {
		return nil
	}
	if err := d.mkdirs(path.Dir(dir)); err != nil {
		return err
	}
	err := d.root.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		// A file or a symlink leading outside shows up as an error later,
		// when something is created inside it through the root.
		return nil
	}
	if err != nil {
		return fmt.Errorf("create directory: %w", explain(err, filepath.Join(d.path, path.Dir(dir))))
	}
	if err := d.root.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod directory: %w", err)
	}
	// The new directory's entry must be durable before files in it are.
	return d.syncDir(path.Dir(dir))
}

func (d *Dir) syncDir(dir string) error {
	fh, err := d.root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory to sync: %w", err)
	}
	err = fh.Sync()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
