package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// explain adds what to do to the write errors that are fixed in the task
// definition, not in the agent: a read-only volume, or one the agent's user
// cannot write. dir is where the write went; an error naming an absolute
// path (creating the output directory itself) names its parent instead.
// err stays wrapped, so errors.Is still sees the errno.
func explain(err error, dir string) error { return explainAs(err, dir, os.Geteuid()) }

func explainAs(err error, dir string, uid int) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && filepath.IsAbs(pe.Path) {
		dir = filepath.Dir(pe.Path)
	}
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (the volume holding %s is read-only: mount it with \"readOnly\": false in the agent's mountPoints)", err, dir)
	case errors.Is(err, syscall.EACCES) && uid == 0:
		return fmt.Errorf("%w (the agent runs as root and still cannot write to %s: the volume does not let root write, "+
			"as with an EFS access point or root squashing; give the agent a volume it can write)", err, dir)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w (the agent runs as uid %d, which cannot write to %s: a bind-mount volume is owned by root with mode 0755 unless the image "+
			"that first mounts it has the directory with another owner; run the agent as root (\"user\": \"0\") or create the directory owned by uid %d in the agent's image)",
			err, uid, dir, uid)
	}
	return err
}

// explainChown says why a chown to the configured uid/gid was refused.
func explainChown(err error) error { return explainChownAs(err, os.Geteuid()) }

func explainChownAs(err error, uid int) error {
	switch {
	case !errors.Is(err, syscall.EPERM):
		return err
	case uid == 0:
		return fmt.Errorf("%w (the agent runs as root, and the volume still refuses to change a file's owner, "+
			"as NFS and EFS can: remove uid and gid from the configuration)", err)
	}
	return fmt.Errorf("%w (the agent runs as uid %d, and only root can give a file another owner: run the agent as root (\"user\": \"0\") "+
		"or remove uid and gid from the configuration)", err, uid)
}
