package render

import (
	"errors"
	"sync"
)

// writeConcurrency is how many files WriteAll writes at once. Each write
// waits on two syncs; on a journalled disk concurrent syncs share journal
// commits, so a set of files costs about what one does.
const writeConcurrency = 16

// WriteAll writes every file, concurrently, and returns how many changed.
// Each file is atomic on its own; on error the others are still written and
// the errors are joined, in the order of files.
// A removed or replaced output directory is reopened first.
func (d *Dir) WriteAll(files []File) (changed int, err error) {
	if err := d.reopenIfGone(); err != nil {
		return 0, err
	}
	errs := make([]error, len(files))
	flags := make([]bool, len(files))
	sem := make(chan struct{}, writeConcurrency)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			flags[i], errs[i] = d.write(f)
		}()
	}
	wg.Wait()
	for _, c := range flags {
		if c {
			changed++
		}
	}
	return changed, errors.Join(errs...)
}
