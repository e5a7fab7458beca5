package render

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Temp files are named ".BASE.agent-tmp-XXXXXXXXXXXXXXXX" (16 hex digits) so
// that OpenDir can tell a leftover of a killed run from anything else.
const (
	tempMarker = ".agent-tmp-"
	tempRandom = 16
	// maxTempBase keeps the temp name under NAME_MAX (255) for long targets.
	maxTempBase = 255 - 1 - len(tempMarker) - tempRandom
)

func tempName(base string) string {
	if len(base) > maxTempBase {
		base = base[:maxTempBase]
	}
	var b [tempRandom / 2]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return "." + base + tempMarker + hex.EncodeToString(b[:])
}

// IsAgentFile reports whether rel, a slash-separated path relative to the
// output directory, is a file the agent keeps for itself (a temp file, the
// lock file or the note of a pending change), not an output: a change to it
// is no reason to repair.
func IsAgentFile(rel string) bool {
	return rel == lockName || rel == pendingName || isTempName(path.Base(rel))
}

func isTempName(name string) bool {
	i := strings.LastIndex(name, tempMarker)
	if !strings.HasPrefix(name, ".") || i < 1 {
		return false
	}
	suffix := name[i+len(tempMarker):]
	if len(suffix) != tempRandom {
		return false
	}
	for _, c := range []byte(suffix) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// removeTemps deletes the temp files a killed earlier run left anywhere in the
// tree. It does not follow symlinks and skips directories it cannot read: they
// are not ours to fail on.
func (d *Dir) removeTemps() error {
	var errs []error
	walk := func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			if name == "." {
				return err
			}
			return fs.SkipDir
		}
		if e.Type().IsRegular() && isTempName(e.Name()) {
			if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return nil
	}
	if err := fs.WalkDir(d.root.FS(), ".", walk); err != nil {
		return fmt.Errorf("remove leftover temp files: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove leftover temp files: %w", err)
	}
	return nil
}
