package render

import (
	"fmt"
	"strings"
)

// maxPath is Linux's PATH_MAX; a longer name cannot be opened anyway.
const maxPath = 4096

// CheckPath rejects what could escape or confuse: empty, absolute, "." or ".."
// elements, empty elements ("a//b"), trailing "/", NUL, longer than 4096 bytes,
// and names that look like our own temp files (OpenDir would delete them).
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
		if isTempName(elem) {
			return fmt.Errorf("path %q looks like an agent temp file", p)
		}
	}
	return nil
}
