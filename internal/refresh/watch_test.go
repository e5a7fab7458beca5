package refresh

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// watchDeadline bounds a wait for an event that must come; it fails a hung
// test, it asserts no speed.
const watchDeadline = 30 * time.Second

// The repair storm (issue 12 #9): while writes fail, each attempt's temp
// file must not trigger the next repair, and neither must a file next to the
// config file. A real output change still does, also after the output
// directory was removed and recreated.
func TestWatchSendsOnlyOutputChanges(t *testing.T) {
	cfgDir, out := t.TempDir(), t.TempDir()
	cfg := filepath.Join(cfgDir, "agent.json")
	write := func(p, data string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "v0")
	load := func() (*config.Settings, error) { return &config.Settings{OutputDir: out}, nil }
	ev, err := Watch(t.Context(), cfg, out, load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	wantOutput := func(what string) {
		t.Helper()
		select {
		case <-ev.Output:
		case <-time.After(watchDeadline):
			t.Fatalf("%s: no Output event", what)
		}
	}
	// barrier changes the config file and waits for its reload: events are
	// handled in order, so every event from before has been handled then.
	version := 0
	barrier := func() {
		t.Helper()
		version++
		write(cfg, "v"+string(rune('0'+version)))
		select {
		case <-ev.Config:
		case <-time.After(watchDeadline):
			t.Fatal("config change not reloaded")
		}
	}
	noOutput := func(what string) {
		t.Helper()
		select {
		case <-ev.Output:
			t.Errorf("%s sent an Output event", what)
		default:
		}
	}
	drain := func() {
		select {
		case <-ev.Output:
		default:
		}
	}

	if err := os.Mkdir(filepath.Join(out, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantOutput("new subdirectory")
	barrier()
	drain()

	for _, p := range []string{
		filepath.Join(out, ".DB.agent-tmp-0123456789abcdef"),
		filepath.Join(out, "sub", ".x.agent-tmp-fedcba9876543210"),
	} {
		write(p, "partial")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(out, ".agent.lock"), "pid 1 on host h since now\n")
	write(filepath.Join(cfgDir, "other.json"), "x")
	write(filepath.Join(cfgDir, ".agent.json.swp"), "x")
	barrier()
	noOutput("the agent's temp and lock files, or a config sibling,")

	write(filepath.Join(out, "DB"), "hunter2")
	wantOutput("output file")
	write(filepath.Join(out, "sub", "x"), "hunter2")
	wantOutput("output file in a subdirectory")
	barrier()
	drain()

	// Removed, then recreated (by the repair): watched again.
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	wantOutput("removed output directory")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	barrier()
	drain()
	write(filepath.Join(out, "DB"), "hunter2")
	wantOutput("output file in the recreated directory")
}

func TestIsOutput(t *testing.T) {
	tests := []struct {
		dir, name string
		want      bool
	}{
		{"/run/secrets", "/run/secrets", true},
		{"/run/secrets", "/run/secrets/DB", true},
		{"/run/secrets", "/run/secrets/api/key.txt", true},
		{"/run/secrets", "/run/secrets/api/.agent.lock", true},
		{"/run/secrets", "/run/secrets/..x", true},
		{"/run/secrets", "/run/secrets/.DB.agent-tmp-0123456789abcdef", false},
		{"/run/secrets", "/run/secrets/api/.k.agent-tmp-0123456789abcdef", false},
		{"/run/secrets", "/run/secrets/.agent.lock", false},
		{"/run/secrets", "/run/secrets2", false},
		{"/run/secrets", "/run/agent.json", false},
		{"/run/secrets", "/run", false},
		{"", "/run/secrets/DB", false},
	}
	for _, tt := range tests {
		if got := isOutput(tt.dir, tt.name); got != tt.want {
			t.Errorf("isOutput(%q, %q) = %v, want %v", tt.dir, tt.name, got, tt.want)
		}
	}
}

// A reload that moves outputDir moves the watch with it: tampering in the
// new directory is repaired at once, not at the next refresh.
func TestWatchFollowsAReloadedOutputDir(t *testing.T) {
	cfgDir, out, moved := t.TempDir(), t.TempDir(), t.TempDir()
	cfg := filepath.Join(cfgDir, "agent.json")
	if err := os.WriteFile(cfg, []byte("v0"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func() (*config.Settings, error) { return &config.Settings{OutputDir: moved}, nil }
	ev, err := Watch(t.Context(), cfg, out, load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.Config:
	case <-time.After(watchDeadline):
		t.Fatal("config change not reloaded")
	}
	if err := os.WriteFile(filepath.Join(moved, "A"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.Output:
	case <-time.After(watchDeadline):
		t.Fatal("a change in the reloaded output directory sent no Output event")
	}
}

// TestWatchRepairsWhatChangedBeforeItBegan: the agent is ready (and its
// files may be deleted) before the watch begins; the first notice comes at
// once, so that change is repaired now, not at the next refresh, maybe an
// hour later.
func TestWatchRepairsWhatChangedBeforeItBegan(t *testing.T) {
	out := t.TempDir()
	ev, err := Watch(t.Context(), "", out, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.Output:
	case <-time.After(watchDeadline):
		t.Fatal("no first Output notice")
	}
}

// TestWatchOfAnOutputDirRemovedBeforeItBegan: the directory is removed
// between the first render and the watch (the agent is ready by then). The
// watch still begins, its first notice has the loop recreate the
// directory, and the recreated one is watched. Before, Watch failed, and
// the agent fell back to its refresh timer alone: an hour to repair.
func TestWatchOfAnOutputDirRemovedBeforeItBegan(t *testing.T) {
	out := filepath.Join(t.TempDir(), "secrets")
	ev, err := Watch(t.Context(), "", out, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Watch of a removed output directory: %v", err)
	}
	wantOutput := func(what string) {
		t.Helper()
		select {
		case <-ev.Output:
		case <-time.After(watchDeadline):
			t.Fatalf("%s: no Output notice", what)
		}
	}
	wantOutput("the first notice")
	if err := os.MkdirAll(filepath.Join(out, "sub"), 0o755); err != nil { // the repair
		t.Fatal(err)
	}
	wantOutput("the directory recreated")
	// Events in the recreated directory arrive once it is watched; keep
	// touching the file until one does, within the deadline.
	deadline := time.After(watchDeadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if err := os.WriteFile(filepath.Join(out, "sub", "A"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ev.Output:
			return
		case <-deadline:
			t.Fatal("a change in the recreated directory was never seen")
		case <-tick.C:
		}
	}
}
