package refresh

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

// Watch turns file events into loop events: a changed config file (watched
// through its directory, since editors and deploy tools replace files by
// rename) is reloaded and, if valid, sent on Config; a change in the output
// directory tree is sent on Output, for the loop to re-read and repair.
// Nothing else is: not the agent's own temp and lock files (while writes
// fail, each attempt's temp file would trigger the next repair), not the
// config file's neighbours. The output directory's parent is watched too,
// so a removed output directory is watched again once the repair has
// recreated it. Event kinds are not trusted: the receivers re-read and
// compare. The first notice on Output is sent at once: a change made
// before the watch began. configPath may be empty (configuration from flags or
// AGENT_CONFIG), and so may outputDir (exec mode writes no file).
func Watch(ctx context.Context, configPath, outputDir string, load func() (*config.Settings, error), log *slog.Logger) (Events, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return Events{}, err
	}
	if configPath != "" {
		if err := w.Add(filepath.Dir(configPath)); err != nil {
			_ = w.Close()
			return Events{}, err
		}
	}
	if outputDir != "" {
		outputDir = filepath.Clean(outputDir)
		// Gone already (removed since the first render): the first notice
		// below recreates it, and its parent's watch sees it come back.
		if err := addTree(w, outputDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			_ = w.Close()
			return Events{}, err
		}
		// Best effort: without it a recreated directory goes unwatched,
		// and the refresh timer still repairs.
		_ = w.Add(filepath.Dir(outputDir))
	}
	var outputDirs []string
	if outputDir != "" {
		outputDirs = append(outputDirs, outputDir)
	}
	cfgCh := make(chan *config.Settings)
	outCh := make(chan struct{}, 1)
	if outputDir != "" {
		// The files were rendered, and the agent reported ready, before
		// this watch began: one pass now repairs what changed meanwhile,
		// which would otherwise wait for the next refresh.
		outCh <- struct{}{}
	}
	lastConfig, _ := os.ReadFile(configPath)
	go func() {
		defer w.Close()
		var reload <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("file watch error; the refresh timer still runs", "error", err.Error())
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if configPath != "" && filepath.Clean(ev.Name) == filepath.Clean(configPath) {
					if reload == nil {
						reload = time.After(repairDelay)
					}
					continue
				}
				if !slices.ContainsFunc(outputDirs, func(d string) bool { return isOutput(d, ev.Name) }) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					// A new subdirectory: watch it too. Errors mean it is
					// not a directory or is already gone.
					_ = addTree(w, ev.Name)
				}
				select {
				case outCh <- struct{}{}:
				default: // one pending notice is enough
				}
			case <-reload:
				reload = nil
				data, err := os.ReadFile(configPath)
				if err != nil || bytes.Equal(data, lastConfig) {
					continue
				}
				s, err := load()
				if err != nil {
					log.Error("reloaded configuration rejected; keeping the old one: " + err.Error())
					lastConfig = data
					continue
				}
				lastConfig = data
				if d := filepath.Clean(s.OutputDir); s.OutputDir != "" && !slices.Contains(outputDirs, d) {
					// The reload moves the output: watch the new directory
					// (and its parent, for when the loop creates it), and
					// the old one still, in case the loop rejects it.
					outputDirs = append(outputDirs, d)
					_ = addTree(w, d)
					_ = w.Add(filepath.Dir(d))
				}
				select {
				case cfgCh <- s:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return Events{Config: cfgCh, Output: outCh}, nil
}

// isOutput reports whether name is the output directory or a file in it
// that is not one of the agent's own.
func isOutput(outputDir, name string) bool {
	if outputDir == "" {
		return false
	}
	rel, err := filepath.Rel(outputDir, filepath.Clean(name))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return rel == "." || !render.IsAgentFile(filepath.ToSlash(rel))
}

// addTree watches dir and every directory below it, without following
// symlinks out of it.
// A directory below that vanishes meanwhile is skipped: its removal is
// itself an event, already seen on its parent.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = w.Add(p)
		}
		if err != nil && p != dir && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}
