// Package child runs the app as the agent's child process in exec mode:
// start it with an environment, forward signals to it, reap orphans when the
// agent is PID 1, restart it on rotation, and report how it exited.
package child

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Forwarded are the signals the agent passes on to the child. SIGCHLD is the
// agent's own, and SIGURG belongs to the Go runtime.
var forwarded = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1,
	syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGTSTP,
	syscall.SIGTTIN, syscall.SIGTTOU,
}

// Supervisor owns the child. Create it with Start; it is safe for concurrent
// use.
type Supervisor struct {
	path string
	args []string

	mu         sync.Mutex
	proc       *os.Process
	restarting bool
	restartPid int // the app a Restart is stopping: its end is the restart's, not the agent's
	// ended: the app exited on its own (Exited has its code); stopping: a
	// terminating signal was forwarded to it. A restart then would bring
	// up an app that nothing stops.
	ended, stopping bool
	lastRestart     time.Time
	minGap          time.Duration
	log             *slog.Logger
	now             func() time.Time // time.Now; tests fix it
	afterSpawn      func()           // tests: between a restart's spawn and its end

	exited  chan int // the exit code of a child that ended on its own
	reaped  chan reap
	spawned chan struct{}
	sigs    chan os.Signal
	stop    chan struct{}
}

type reap struct {
	pid    int
	status syscall.WaitStatus
}

// Start starts path with args and env, and begins forwarding signals and
// reaping. minGap rate-limits restarts. log (nil: discarded) gets restarts at
// info.
func Start(path string, args, env []string, minGap time.Duration, log *slog.Logger) (*Supervisor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{path: path, args: args, minGap: minGap, log: log, now: time.Now,
		exited: make(chan int, 1), reaped: make(chan reap, 16), spawned: make(chan struct{}, 1),
		sigs: make(chan os.Signal, 16), stop: make(chan struct{})}
	// Catch signals before the child exists, so none is lost in between.
	signal.Notify(s.sigs, forwarded...)
	if err := s.spawn(env); err != nil {
		signal.Stop(s.sigs)
		return nil, err
	}
	go s.reapLoop()
	go s.forwardLoop()
	return s, nil
}

func (s *Supervisor) spawn(env []string) error {
	p, err := os.StartProcess(s.path, append([]string{s.path}, s.args...), &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	select {
	case s.spawned <- struct{}{}:
	default:
	}
	return nil
}

// Pid is the current child's process id.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.Pid
}

// Exited delivers the exit code of the child when it ends on its own (not
// during a restart): the code it exited with, or 128+signal.
func (s *Supervisor) Exited() <-chan int { return s.exited }

// Signal sends sig to the child.
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal child %d: %w", p.Pid, err)
	}
	return nil
}

// Restart stops the child (SIGTERM, then SIGKILL after grace) and starts it
// again with env. Restarts closer together than minGap wait for the gap, so
// a burst of rotations restarts the app at a bounded rate.
func (s *Supervisor) Restart(ctx context.Context, env []string, grace time.Duration) error {
	s.mu.Lock()
	wait := s.lastRestart.Add(s.minGap).Sub(s.now())
	s.mu.Unlock()
	if wait > 0 {
		s.log.Info(fmt.Sprintf("restart delayed by %s: at most one per %s", wait.Round(time.Second), s.minGap),
			"delay", wait.Round(time.Millisecond).String(), "min_gap", s.minGap.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	if s.ended || s.stopping {
		s.mu.Unlock()
		return ErrNotRunning
	}
	s.restarting = true
	old := s.proc
	s.restartPid = old.Pid
	s.mu.Unlock()

	done := s.waitFor(old.Pid)
	s.log.Debug("stopping the app for a restart", "pid", old.Pid, "grace", grace.String())
	_ = old.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Info(fmt.Sprintf("the app did not stop within %s of SIGTERM: sending SIGKILL", grace), "pid", old.Pid)
		_ = old.Signal(syscall.SIGKILL)
		<-done
	}
	err := s.spawn(env)
	if s.afterSpawn != nil {
		s.afterSpawn()
	}
	s.mu.Lock()
	s.restarting = false
	s.lastRestart = s.now()
	pid := 0
	if s.proc != nil {
		pid = s.proc.Pid
	}
	s.mu.Unlock()
	if err != nil {
		// No app left to supervise: end the agent as a failed start would.
		s.exited <- 127
		return err
	}
	s.log.Info(fmt.Sprintf("restarted the app: pid %d → %d", old.Pid, pid), "old_pid", old.Pid, "pid", pid)
	return nil
}

// ErrNotRunning is a restart refused because the app exited or is being
// stopped.
var ErrNotRunning = errors.New("the app has exited or is stopping: not restarting it")

// waitFor returns a channel closed when pid has been reaped.
func (s *Supervisor) waitFor(pid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for r := range s.reaped {
			if r.pid == pid {
				close(ch)
				return
			}
		}
	}()
	return ch
}

// reapLoop waits for every child of the agent: the app, and orphans that a
// PID 1 inherits. The app's status goes to Exited or to a pending Restart.
func (s *Supervisor) reapLoop() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil { // ECHILD: no child at all
			s.mu.Lock()
			restarting := s.restarting
			s.mu.Unlock()
			if !restarting {
				return
			}
			// Between the old app's end and the new one's start.
			select {
			case <-s.spawned:
				continue
			case <-s.stop:
				return
			}
		}
		s.mu.Lock()
		// By pid: the new app can end (SIGTERM forwarded to it) before
		// Restart has cleared restarting; that end is the agent's.
		stopped := s.restarting && pid == s.restartPid
		current := s.proc != nil && pid == s.proc.Pid && !stopped
		if current {
			s.ended = true // decided under the lock Restart checks
		}
		s.mu.Unlock()
		if stopped {
			s.reaped <- reap{pid: pid, status: ws}
			continue
		}
		if !current {
			continue // an orphan, now reaped
		}
		s.exited <- exitCode(ws)
		return
	}
}

func (s *Supervisor) forwardLoop() {
	for {
		select {
		case sig := <-s.sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT {
				s.mu.Lock()
				s.stopping = true
				s.mu.Unlock()
			}
			_ = s.Signal(sig)
		case <-s.stop:
			return
		}
	}
}

// Close stops forwarding signals.
func (s *Supervisor) Close() {
	signal.Stop(s.sigs)
	close(s.stop)
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
