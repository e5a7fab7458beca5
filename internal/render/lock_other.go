//go:build !unix

package render

import "os"

// tryLock has no flock to use here; the lock always succeeds.
func tryLock(*os.File) (busy bool, err error) { return false, nil }
