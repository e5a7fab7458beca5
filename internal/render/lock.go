package render

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// lockName is the lock file in the output directory. CheckPath refuses it
// as a destination and the file watch ignores it.
const lockName = ".agent.lock"

// lockPoll is how often a waiting agent retries the lock: flock cannot be
// interrupted by a context, so OpenDir polls without blocking.
const lockPoll = 100 * time.Millisecond

// acquire takes the exclusive lock of the directory root opened at path,
// waiting for another holder until ctx ends. It returns the open lock file,
// whose closing releases the lock.
func acquire(ctx context.Context, root *os.Root, path string, waiting func(holder string)) (*os.File, error) {
	fh, writable, err := openLockFile(root)
	if err != nil {
		return nil, fmt.Errorf("output directory %q: lock file %s: %w", path, lockName, explain(err, path))
	}
	told := false
	var tick *time.Ticker
	for {
		busy, err := tryLock(fh)
		if err != nil {
			_ = fh.Close()
			return nil, fmt.Errorf("output directory %q: lock %s: %w", path, lockName, err)
		}
		if !busy {
			if writable {
				// Only for the message of an agent that waits; a failure
				// here costs nothing but that message.
				_ = fh.Truncate(0)
				_, _ = fh.WriteAt([]byte(holderLine()), 0)
			}
			return fh, nil
		}
		holder := readHolder(fh)
		if !told && waiting != nil {
			waiting(holder)
		}
		told = true
		if tick == nil {
			tick = time.NewTicker(lockPoll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			_ = fh.Close()
			who := "an agent that did not write its name"
			if holder != "" {
				who = strconv.Quote(holder)
			}
			return nil, fmt.Errorf("output directory %q is in use by another agent (%s holds %s; one agent per output directory): %w",
				path, who, lockName, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// openLockFile opens (creating it if missing) the lock file, read-write when
// it can, else read-only (a lock file left by an agent running as another
// user). It refuses anything but a regular file, so a planted symlink cannot
// make us lock or overwrite a secret's file.
func openLockFile(root *os.Root) (fh *os.File, writable bool, err error) {
	// Checked before opening too: opening a planted device can have effects.
	if lfi, err := root.Lstat(lockName); err == nil && !lfi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("is not a regular file; remove it")
	}
	fh, err = root.OpenFile(lockName, os.O_RDWR|os.O_CREATE, 0o644)
	writable = err == nil
	if errors.Is(err, os.ErrPermission) {
		if ro, rerr := root.OpenFile(lockName, os.O_RDONLY, 0); rerr == nil {
			fh, err = ro, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	lfi, lerr := root.Lstat(lockName)
	fi, ferr := fh.Stat()
	if lerr != nil || ferr != nil || !lfi.Mode().IsRegular() || !os.SameFile(lfi, fi) {
		_ = fh.Close()
		return nil, false, fmt.Errorf("is not a regular file; remove it")
	}
	return fh, writable, nil
}

// holderLine names this process for an agent that waits for the lock.
func holderLine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("pid %d on host %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
}

// readHolder returns what the lock file says of its holder, trimmed and
// capped; "" if it says nothing. The file is in a shared volume, so
// anything printing it quotes or escapes it.
func readHolder(fh *os.File) string {
	buf := make([]byte, 200)
	n, err := fh.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return ""
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(buf[:n])), "?")
}
