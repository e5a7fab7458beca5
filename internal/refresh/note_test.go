package refresh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

const noteFile = ".agent.pending"

// keeping is a harness whose loop keeps a change over restarts, as run's.
func keeping(h *harness) *harness {
	h.loop.keepPending = true
	return h
}

func readNote(t *testing.T, dir string) (note, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, noteFile))
	if errors.Is(err, fs.ErrNotExist) {
		return note{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var n note
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatalf("note %q: %v", b, err)
	}
	return n, true
}

// restart stops h as SIGTERM or a crash would (the note stays where it is)
// and starts a new agent on its directory, with AWS now holding values.
func restart(t *testing.T, h *harness, stop func(), values map[string]string, rec *recorder) (*harness, func()) {
	t.Helper()
	stop()
	if err := h.loop.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := keeping(newHarnessIn(t, h.out, twoSecrets, values, 0.5, rec.factory))
	return h2, h2.running(t, Events{})
}

// TestChangeNotDeliveredBeforeARestartIsDeliveredAfterIt: a change whose
// action failed, or whose render failed, when the agent's process ended is
// delivered by the next process, which finds the app still running; without
// the note, its first render finds the files already current (or writes
// them) and tells the app nothing.
func TestChangeNotDeliveredBeforeARestartIsDeliveredAfterIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(*harness, *recorder)
	}{
		{"action failing", func(_ *harness, rec *recorder) { rec.setFail(0, true) }},
		{"render failing", func(h *harness, _ *recorder) { h.block(t, "A") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder(2)
				h := keeping(newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory))
				stop := h.running(t, Events{})
				if _, ok := readNote(t, h.out); ok {
					t.Fatal("a note after a first render with nothing to deliver")
				}
				tc.fail(h, rec)
				h.src.rotate("A", "a2")
				advance(5*time.Second + 500*time.Millisecond) // the poll at 5s
				n, ok := readNote(t, h.out)
				if !ok || !slices.Equal(n.Changed, []string{"A"}) || !n.At.Equal(h.src.start.Add(2*time.Hour)) {
					t.Fatalf("note %+v (present %v), want changed [A] at the version's date", n, ok)
				}
				if h.file(t, "B") != "b1" {
					t.Fatal("B changed")
				}
				if tc.name == "render failing" {
					h.unblock(t, "A")
				}

				rec2 := newRecorder(2)
				h2, stop2 := restart(t, h, stop, map[string]string{"A": "a2", "B": "b1"}, rec2)
				defer stop2()
				if h2.file(t, "A") != "a2" {
					t.Fatalf("A = %q after the restart", h2.file(t, "A"))
				}
				advance(1500 * time.Millisecond) // the first retry, 1 s after Run starts
				for i := range 2 {
					if got := rec2.count(i); got != 1 {
						t.Fatalf("action %d ran %d times after the restart, want 1", i, got)
					}
				}
				c := rec2.last(0)
				if !slices.Equal(c.Changed, []string{"A"}) || !c.Restored || !c.At.Equal(n.At) || string(c.Values["A"].Value.Bytes()) != "a2" {
					t.Errorf("restored change: changed=%v restored=%v at=%v A=%q", c.Changed, c.Restored, c.At, c.Values["A"].Value.Bytes())
				}
				if _, ok := readNote(t, h2.out); ok {
					t.Error("the note outlived the delivery")
				}
				if !strings.Contains(h2.logs.String(), "delivering a change an earlier agent process had not delivered to the app") {
					t.Errorf("no log line for the restored change: %s", h2.logs)
				}
				advance(time.Minute)
				if got := rec2.count(0); got != 1 {
					t.Errorf("action ran %d times in the minute after, want 1", got)
				}
			})
		})
	}
}

// TestRotationWhileNoAgentRanIsDeliveredAtStart: the agent's container is
// down (crashed, restarting) while a secret rotates; the next process's
// first render replaces the files the app reads, so the app is told.
func TestRotationWhileNoAgentRanIsDeliveredAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := keeping(newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory))
		stop := h.running(t, Events{})
		advance(time.Second)
		rec2 := newRecorder(1)
		values := map[string]string{"A": "a1", "B": "b2"}
		h2, stop2 := restart(t, h, stop, values, rec2)
		defer stop2()
		advance(1500 * time.Millisecond)
		if got := rec2.count(0); got != 1 {
			t.Fatalf("action ran %d times after a start that replaced the files, want 1", got)
		}
		c := rec2.last(0)
		// fakeSource dates version v at start + v hours; both at version 1.
		if !c.Restored || !c.At.Equal(h2.src.start.Add(time.Hour)) || string(c.Values["B"].Value.Bytes()) != "b2" {
			t.Errorf("change: restored=%v at=%v B=%q", c.Restored, c.At, c.Values["B"].Value.Bytes())
		}
		if _, ok := readNote(t, h2.out); ok {
			t.Error("a note after delivery")
		}
	})
}

// TestRestartWithNothingPendingTellsTheAppNothing: a restart after a change
// was delivered, with nothing new, runs no action; neither does a first
// start into an empty directory.
func TestRestartWithNothingPendingTellsTheAppNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := keeping(newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory))
		stop := h.running(t, Events{})
		h.src.rotate("A", "a2")
		advance(6 * time.Second)
		if got := rec.count(0); got != 1 {
			t.Fatalf("action ran %d times for the rotation, want 1", got)
		}
		if _, ok := readNote(t, h.out); ok {
			t.Fatal("a note after delivery")
		}
		rec2 := newRecorder(1)
		_, stop2 := restart(t, h, stop, map[string]string{"A": "a2", "B": "b1"}, rec2)
		defer stop2()
		advance(time.Minute)
		if got := rec2.count(0); got != 0 {
			t.Errorf("action ran %d times after a restart with nothing pending, want 0", got)
		}
	})
}

// TestExecKeepsNoNote: exec's restart restarts the app, which reads the new
// values; a note would only make it be told again.
func TestExecKeepsNoNote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		rec.setFail(0, true)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		stop := h.running(t, Events{})
		defer stop()
		h.src.rotate("A", "a2")
		advance(6 * time.Second)
		if rec.count(0) == 0 {
			t.Fatal("the action never ran")
		}
		if _, ok := readNote(t, h.out); ok {
			t.Error("a note without KeepPending")
		}
	})
}

// TestNoteThatCannotBeWrittenStillDelivers: the note is for restarts; a
// volume that refuses it (here a directory in its place) costs one error
// line, never the delivery in this process.
func TestNoteThatCannotBeWrittenStillDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := keeping(newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory))
		stop := h.running(t, Events{})
		defer stop()
		if err := os.MkdirAll(filepath.Join(h.out, noteFile, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		h.src.rotate("A", "a2")
		advance(6 * time.Second)
		h.src.rotate("B", "b2")
		advance(10 * time.Second)
		if got := rec.count(0); got != 2 || h.file(t, "A") != "a2" || h.file(t, "B") != "b2" {
			t.Fatalf("%d actions, A=%q B=%q; want 2 deliveries", got, h.file(t, "A"), h.file(t, "B"))
		}
		if n := strings.Count(h.logs.String(), "a change in progress would not survive a restart of the agent"); n != 1 {
			t.Errorf("%d error lines for the note, want 1 (logged once while it fails): %s", n, h.logs)
		}
	})
}

// TestReloadMovesThePendingNote: a change still pending when a reload
// moves the output directory is noted in the new one, not left behind in
// the old one, where no agent would ever deliver it.
func TestReloadMovesThePendingNote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		rec.setFail(0, true)
		h := keeping(newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory))
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.src.rotate("A", "a2")
		advance(5*time.Second + 500*time.Millisecond)
		if _, ok := readNote(t, h.out); !ok {
			t.Fatal("no note for a change whose action fails")
		}
		other := t.TempDir()
		ns := reloadCfg(t, h, twoSecrets)
		ns.OutputDir = other
		cfgCh <- ns
		synctest.Wait()
		if _, ok := readNote(t, h.out); ok {
			t.Error("the note stayed in the old output directory")
		}
		if n, ok := readNote(t, other); !ok || !slices.Equal(n.Changed, []string{"A"}) {
			t.Errorf("note in the new directory: %+v (present %v), want changed [A]", n, ok)
		}
		rec.setFail(0, false)
		advance(time.Minute)
		if _, ok := readNote(t, other); ok {
			t.Error("the note outlived the delivery")
		}
	})
}

// BenchmarkDeliverChange is one refresh cycle that finds a rotated secret,
// renders it and runs the action, with and without the note that makes
// the change outlive the process (two more atomic writes per change: the
// note before the render, its removal after the actions).
func BenchmarkDeliverChange(b *testing.B) {
	for _, keep := range []bool{false, true} {
		b.Run(fmt.Sprintf("note=%v", keep), func(b *testing.B) {
			rec := newRecorder(1)
			h := newHarnessIn(b, b.TempDir(), twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
			h.loop.keepPending = keep
			if err := h.loop.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				h.src.rotate("A", fmt.Sprintf("a%d", i))
				h.loop.cycle(b.Context())
			}
			if rec.count(0) != b.N {
				b.Fatalf("%d actions for %d changes", rec.count(0), b.N)
			}
		})
	}
}
