//go:build unix

package render

import (
	"io/fs"
	"syscall"
)

// ownedBy reports whether fi has the wanted uid and gid; -1 matches any.
func ownedBy(fi fs.FileInfo, uid, gid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return uid == -1 && gid == -1
	}
	return (uid == -1 || int(st.Uid) == uid) && (gid == -1 || int(st.Gid) == gid)
}
