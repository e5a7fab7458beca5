package render

import (
	"fmt"
	"path"
	"strings"
)

// maxPath is Linux's PATH_MAX; a longer name cannot be opened anyway.
const maxPath = 4096

// maxName is NAME_MAX, the longest name of one file or directory on Linux
// file systems. The temp file of a name this long still fits (tempName).
const maxName = 255

// CheckPath rejects what could escape or confuse: empty, absolute, "." or ".."
// elements, empty elements ("a//b"), trailing "/", NUL, longer than 4096 bytes,
// an element longer than 255 bytes, names that look like our own temp files
// (OpenDir would delete them) and the lock file.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case len(p) > maxPath:
		return fmt.Errorf("path of %d bytes is longer than %d", len(p), maxPath)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q contains a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q must be relative to the output directory", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("path %q must not end in \"/\"", p)
	case p == lockName:
		return fmt.Errorf("path %q is the agent's lock file", p)
	case p == pendingName:
		return fmt.Errorf("path %q is the agent's note of a pending change", p)
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "":
			return fmt.Errorf("path %q has an empty element", p)
		case ".":
			return fmt.Errorf("path %q has a \".\" element", p)
		case "..":
			return fmt.Errorf("path %q must stay inside the output directory", p)
		}
		if len(elem) > maxName {
			return fmt.Errorf("path element %.32q… is %d bytes long; a file or directory name can have at most %d", elem, len(elem), maxName)
		}
		if isTempName(elem) {
			return fmt.Errorf("path %q looks like an agent temp file", p)
		}
	}
	return nil
}

// Target is a file to write and what asks for it, for messages: a
// configuration field ("secrets[1].file") or a description ("envFile").
type Target struct {
	Path, By string
}

// CheckTargets checks every path with CheckPath, then that the paths can
// all exist at once: no path twice, and none that another one needs as a
// directory ("d" and "d/x"). Run before writing anything, it keeps a render
// from failing halfway, with some files written.
func CheckTargets(targets []Target) error {
	by := make(map[string]string, len(targets))
	for _, t := range targets {
		if err := CheckPath(t.Path); err != nil {
			return fmt.Errorf("%s: %w", t.By, err)
		}
		if prev, ok := by[t.Path]; ok {
			return fmt.Errorf("%s: %q is also written by %s", t.By, t.Path, prev)
		}
		by[t.Path] = t.By
	}
	for _, t := range targets {
		for dir := path.Dir(t.Path); dir != "."; dir = path.Dir(dir) {
			if prev, ok := by[dir]; ok {
				return fmt.Errorf("%s: %q needs %q to be a directory, but %s writes a file there", t.By, t.Path, dir, prev)
			}
		}
	}
	return nil
}
