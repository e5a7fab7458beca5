package child

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The helper is this test binary run again with CHILD_TEST_HELPER=1: it
// waits for SIGTERM (which may also arrive before its handler, killing it).
func TestHelperProcess(t *testing.T) {
	if os.Getenv("CHILD_TEST_HELPER") != "1" {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	os.Exit(0)
}

// syncBuffer is a log sink the supervisor's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for l := range strings.Lines(s.b.String()) {
		// Drop the time=… prefix.
		_, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
		out = append(out, rest)
	}
	return out
}

// TestRestartIsLogged protects the lines that say the app was restarted,
// and that a restart was held back by the rate limit: both were silent.
func TestRestartIsLogged(t *testing.T) {
	var logs syncBuffer
	env := append(os.Environ(), "CHILD_TEST_HELPER=1")
	s, err := Start(os.Args[0], []string{"-test.run=^TestHelperProcess$"}, env, 30*time.Second,
		slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A fixed clock: the second restart is due exactly 30s after the first.
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return t0 }

	first := s.Pid()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Restart(ctx, env, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	second := s.Pid()
	if second == first {
		t.Fatalf("pid %d did not change", first)
	}
	// Held back: with its context already done it gives up after saying so.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := s.Restart(done, env, 20*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("second restart: %v, want context.Canceled", err)
	}
	want := []string{
		fmt.Sprintf(`level=DEBUG msg="stopping the app for a restart" pid=%d grace=20s`, first),
		fmt.Sprintf(`level=INFO msg="restarted the app: pid %d → %d" old_pid=%d pid=%d`, first, second, first, second),
		`level=INFO msg="restart delayed by 30s: at most one per 30s" delay=30s min_gap=30s`,
	}
	if got := logs.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := s.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-s.Exited():
		if code != 128+9 {
			t.Errorf("exit code %d, want 137", code)
		}
	case <-ctx.Done():
		t.Fatal("the app did not exit on SIGKILL")
	}
}

// An app that exited on its own, or that was sent SIGTERM, is not
// restarted: the restart would wait forever for a child nobody reaps (the
// agent, PID 1, then never exits), or bring up an app that nothing stops.
func TestNoRestartOnceTheAppExitedOrIsStopping(t *testing.T) {
	env := append(os.Environ(), "CHILD_TEST_HELPER=1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, how := range []string{"exited", "stopping"} {
		s, err := Start(os.Args[0], []string{"-test.run=^TestHelperProcess$"}, env, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch how {
		case "exited":
			if err := s.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Exited():
			case <-ctx.Done():
				t.Fatal("no exit")
			}
		case "stopping":
			s.sigs <- syscall.SIGTERM // what ECS's SIGTERM to the agent becomes
			select {
			case <-s.Exited():
			case <-ctx.Done():
				t.Fatal("no exit")
			}
		}
		res := make(chan error, 1)
		go func() { res <- s.Restart(ctx, env, 100*time.Millisecond) }()
		select {
		case err := <-res:
			if !errors.Is(err, ErrNotRunning) {
				t.Errorf("%s: Restart = %v, want ErrNotRunning", how, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s: Restart hangs", how)
		}
		s.Close()
	}
}

// The restarted app can be stopped (SIGTERM forwarded to it) before
// Restart has finished its bookkeeping. Its end is the agent's: Exited
// delivers it. It used to be taken for the old app's end, and the agent,
// PID 1, waited forever (seen once in CI: agent exec hung after SIGTERM).
func TestNewAppEndingDuringRestartIsTheAgentsEnd(t *testing.T) {
	env := append(os.Environ(), "CHILD_TEST_HELPER=1")
	s, err := Start(os.Args[0], []string{"-test.run=^TestHelperProcess$"}, env, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan int, 1)
	s.afterSpawn = func() {
		// The new app is up; kill it and let the reaper see its end
		// while Restart still counts as restarting.
		if err := s.Signal(syscall.SIGKILL); err != nil {
			t.Error(err)
		}
		select {
		case code := <-s.Exited():
			got <- code
		case <-time.After(10 * time.Second):
			got <- -1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Restart(ctx, env, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != 128+9 {
		t.Fatalf("Exited gave %d for the restarted app killed mid-restart, want 137 (-1: never)", code)
	}
}
