package render

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// pendingName is the agent's note, in the output directory, of a change it
// is rendering or has rendered and not yet told the app of. The files
// outlive the agent's process; the note makes the change outlive it too, so
// that an agent restarted beside a running app still tells it. It holds
// secret names and a date, never a value. CheckPath refuses it as a
// destination.
const pendingName = ".agent.pending"

// SetPending makes the note hold data, atomically and durably: it is in
// place before the renders it announces.
func (d *Dir) SetPending(data []byte) error {
	if err := d.reopenIfGone(); err != nil {
		return err
	}
	if _, err := d.replace(File{Path: pendingName, Data: secret.New(data), Mode: 0o600, UID: -1, GID: -1}); err != nil {
		return fmt.Errorf("note the pending change in %s: %w", pendingName, err)
	}
	return nil
}

// ClearPending removes the note; none is not an error.
func (d *Dir) ClearPending() error {
	err := d.root.Remove(pendingName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = d.syncDir(".")
	}
	if err != nil {
		return fmt.Errorf("remove the note of the pending change %s: %w", pendingName, err)
	}
	return nil
}

// Pending returns the note, nil when there is none.
func (d *Dir) Pending() ([]byte, error) {
	fi, err := d.root.Lstat(pendingName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the note of a pending change %s: %w", pendingName, err)
	}
	// Anything else under that name was not written by an agent.
	if !fi.Mode().IsRegular() || fi.Size() > maxPendingNote {
		return nil, fmt.Errorf("read the note of a pending change %s: not a regular file of at most %d bytes", pendingName, maxPendingNote)
	}
	b, err := d.root.ReadFile(pendingName)
	if err != nil {
		return nil, fmt.Errorf("read the note of a pending change %s: %w", pendingName, err)
	}
	return b, nil
}

// maxPendingNote bounds what Pending reads from a shared volume.
const maxPendingNote = 1 << 20

// Exists reports whether rel (as CheckPath accepts it) names anything in
// the directory.
func (d *Dir) Exists(rel string) bool {
	_, err := d.root.Lstat(rel)
	return err == nil
}
