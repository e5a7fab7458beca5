package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/plan"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

// A change outlives the agent's process (Options.KeepPending): before the
// files of a change are rendered, a note in the output directory says so
// (render.Dir.SetPending), and it is removed once every action has
// succeeded on the change. An agent that starts, beside an app that kept
// running, and finds the note, or whose first render replaces files an
// earlier process wrote (a rotation while no agent watched), runs the
// actions on what it rendered: at least once, so the app may be told twice,
// never not at all.

// note is what the note file holds: names and a date, never a value.
type note struct {
	Changed []string  `json:"changed"`
	At      time.Time `json:"at,omitzero"`
}

// writeNote brings the note in line with the loop: present, naming what is
// pending, while a change is being rendered (rendering), undelivered or
// pending; absent otherwise. A failure is logged once: the change is still
// delivered by this process, only a restart could lose it.
func (l *Loop) writeNote(ctx context.Context, rendering bool) {
	if !l.keepPending || l.settings.OutputDir == "" {
		return
	}
	var want []byte
	if rendering || l.undelivered || l.pending != nil {
		n := note{Changed: slices.Collect(maps.Keys(l.changed))}
		if p := l.pending; p != nil {
			n.Changed, n.At = append(n.Changed, p.change.Changed...), p.change.At
		}
		for name := range l.changed {
			n.At = maxTime(n.At, l.have[name].Modified)
		}
		n.Changed = slices.Compact(slices.Sorted(slices.Values(n.Changed)))
		if n.Changed == nil {
			n.Changed = []string{}
		}
		want, _ = json.Marshal(n)
	}
	if bytes.Equal(want, l.noted) && (want == nil) == (l.noted == nil) {
		return
	}
	if l.dir == nil {
		if err := l.openDir(ctx); err != nil {
			return // the render fails on it too, and says so
		}
	}
	var err error
	if want == nil {
		err = l.dir.ClearPending()
	} else {
		err = l.dir.SetPending(want)
	}
	if err != nil {
		if l.noteErr == "" {
			l.log.Error("a change in progress would not survive a restart of the agent: " + err.Error())
		}
		l.noteErr = err.Error()
		return
	}
	if l.noteErr != "" {
		l.log.Info("the note of the change in progress is written again")
		l.noteErr = ""
	}
	l.noted = want
}

// priorFiles reports whether any file the first render plans is already in
// the output directory: written by an earlier agent process.
func (l *Loop) priorFiles(ctx context.Context) bool {
	files, err := plan.Files(l.settings, l.have)
	if err != nil || l.settings.OutputDir == "" || l.openDir(ctx) != nil {
		return false
	}
	return slices.ContainsFunc(files, func(f render.File) bool { return l.dir.Exists(f.Path) })
}

// restore makes pending, after the first render, the change an earlier
// process had not delivered: the one its note names, or, when the first
// render replaced its files, the change that did.
func (l *Loop) restore(replaced bool) {
	if !l.keepPending || l.dir == nil {
		return
	}
	b, err := l.dir.Pending()
	if err != nil {
		l.log.Warn(err.Error())
	}
	var n note
	if b != nil {
		l.noted = b
		if err := json.Unmarshal(b, &n); err != nil {
			l.log.Warn("the note of a pending change does not parse; delivering a change of every secret", "error", err.Error())
		}
	}
	if b == nil && !replaced {
		return
	}
	var names []string
	for _, name := range n.Changed {
		if _, ok := findSecret(l.settings, name); ok {
			names = append(names, name)
		}
	}
	at := n.At
	if replaced {
		// Which secret moved is not known, its date is: the newest.
		for _, r := range l.have {
			at = maxTime(at, r.Modified)
		}
	}
	l.pending = &pending{
		change: action.Change{Settings: l.settings, Values: maps.Clone(l.have), Changed: names, At: at, Restored: true},
		acts:   l.actions, todo: allOf(l.actions), since: l.now(),
	}
	l.log.Info("delivering a change an earlier agent process had not delivered to the app",
		"secrets", names, "noted", b != nil, "files_replaced", replaced)
	l.updatePending()
}

func allOf(acts []action.Action) []int {
	todo := make([]int, len(acts))
	for i := range todo {
		todo[i] = i
	}
	return todo
}
