//go:build unix

package render

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on fh without blocking; busy means
// another open file holds it. flock, not fcntl: it belongs to the open
// file, so two Dirs in one process exclude each other too, and closing fh
// (or dying) releases it.
func tryLock(fh *os.File) (busy bool, err error) {
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return true, nil
		default:
			return false, err
		}
	}
}
