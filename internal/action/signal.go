package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// commLen is how much of a name the kernel keeps in comm (TASK_COMM_LEN - 1).
const commLen = 15

type signalAction struct {
	process  string
	pidFile  string
	sig      syscall.Signal
	sigName  string
	procRoot string
	self     int
}

func newSignal(field string, c config.SignalAction, opts Options) (*signalAction, error) {
	switch {
	case c.Process != "" && c.PIDFile != "":
		return nil, fmt.Errorf("%s.signal: set process or pidFile, not both", field)
	case c.Process == "" && c.PIDFile == "":
		return nil, fmt.Errorf("%s.signal: set process or pidFile (signalling the child needs exec mode)", field)
	}
	sig, name, err := configuredSignal(field, c)
	if err != nil {
		return nil, err
	}
	return &signalAction{
		process:  c.Process,
		pidFile:  c.PIDFile,
		sig:      sig,
		sigName:  name,
		procRoot: opts.ProcRoot,
		self:     opts.SelfPID,
	}, nil
}

// configuredSignal is the signal an action names, SIGHUP by default.
func configuredSignal(field string, c config.SignalAction) (syscall.Signal, string, error) {
	name := strings.ToUpper(c.Signal)
	if name == "" {
		name = "SIGHUP"
	}
	sig, ok := parseSignal(name)
	if !ok {
		return 0, "", fmt.Errorf("%s.signal.signal: %q is not one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH", field, c.Signal)
	}
	return sig, name, nil
}

func parseSignal(name string) (syscall.Signal, bool) {
	switch name {
	case "SIGHUP":
		return syscall.SIGHUP, true
	case "SIGINT":
		return syscall.SIGINT, true
	case "SIGQUIT":
		return syscall.SIGQUIT, true
	case "SIGTERM":
		return syscall.SIGTERM, true
	case "SIGUSR1":
		return syscall.SIGUSR1, true
	case "SIGUSR2":
		return syscall.SIGUSR2, true
	case "SIGWINCH":
		return syscall.SIGWINCH, true
	}
	return 0, false
}

func (a *signalAction) Kind() string { return "signal" }

// Run sends the signal. A signal cannot be half sent, so there is nothing for
// ctx to cut short.
func (a *signalAction) Run(context.Context, Change) error {
	if a.pidFile != "" {
		return a.runPIDFile()
	}
	return a.runProcess()
}

func (a *signalAction) runPIDFile() error {
	pid, err := readPIDFile(a.pidFile)
	if err != nil {
		return err
	}
	if pid == a.self {
		return fmt.Errorf("signal: pid file %s names the agent itself (pid %d)", a.pidFile, pid)
	}
	err = syscall.Kill(pid, a.sig)
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal: pid %d from %s is not running: the pid file is stale, or the agent and the app do not share a PID namespace (pidMode: \"task\" in the task definition)", pid, a.pidFile)
	}
	if err != nil {
		name := ""
		if p, rerr := readProc(a.procRoot, pid); rerr == nil {
			name = p.comm
		}
		return a.killError(pid, name, err)
	}
	return nil
}

func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("signal: pid file %s does not exist: is the app running, and is the file on a volume the agent mounts?", path)
	}
	if err != nil {
		return 0, fmt.Errorf("signal: reading pid file %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	// A pid is a few digits; reading more would only make the error longer.
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, fmt.Errorf("signal: reading pid file %s: %w", path, unwrapPath(err))
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return 0, fmt.Errorf("signal: pid file %s is empty", path)
	}
	pid, err := strconv.ParseInt(s, 10, 32)
	if errors.Is(err, strconv.ErrSyntax) {
		// Not echoed: a pidFile pointing at the wrong file may point at a secret.
		return 0, fmt.Errorf("signal: pid file %s holds %d bytes of text, not a process id", path, len(s))
	}
	if err != nil || pid <= 0 {
		// pid <= 0 would signal a process group or every process.
		return 0, fmt.Errorf("signal: pid file %s holds %s, not a positive process id", path, s)
	}
	return int(pid), nil
}

func (a *signalAction) runProcess() error {
	procs, err := findProcesses(a.procRoot, a.process, a.self)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return fmt.Errorf("signal: no process named %q is visible: the agent and the app must share a PID namespace (pidMode: \"task\" in the task definition)", a.process)
	}
	var errs []error
	sent := 0
	for _, p := range procs {
		err := syscall.Kill(p.pid, a.sig)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, syscall.ESRCH):
			// Exited since the scan.
		default:
			errs = append(errs, a.killError(p.pid, p.comm, err))
		}
	}
	if sent == 0 && len(errs) == 0 {
		return fmt.Errorf("signal: every process named %q exited before it could be signalled", a.process)
	}
	return errors.Join(errs...)
}

func (a *signalAction) killError(pid int, name string, err error) error {
	if !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("signal: sending %s to pid %d: %w", a.sigName, pid, err)
	}
	uid, uerr := readUID(a.procRoot, pid)
	switch {
	case uerr == nil && name != "":
		return fmt.Errorf("signal: not permitted to signal pid %d (%q, uid %d): run the agent as root or as uid %d", pid, name, uid, uid)
	case uerr == nil:
		return fmt.Errorf("signal: not permitted to signal pid %d (uid %d): run the agent as root or as uid %d", pid, uid, uid)
	default:
		return fmt.Errorf("signal: not permitted to signal pid %d: run the agent as root or as the app's uid", pid)
	}
}

type proc struct {
	pid, ppid int
	comm      string
	argv0     string
	zombie    bool
}

// findProcesses returns the processes under procRoot named name, leaving out
// self and any process whose parent is also named name: a reload signal goes
// to nginx's master, which tells its workers, not to each worker.
func findProcesses(procRoot, name string, self int) ([]proc, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("signal: listing processes in %s: %w", procRoot, unwrapPath(err))
	}
	var matched []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || pid == self {
			continue
		}
		p, err := readProc(procRoot, pid)
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !p.zombie && p.named(name) {
			matched = append(matched, p)
		}
	}
	isMatch := make(map[int]bool, len(matched))
	for _, p := range matched {
		isMatch[p.pid] = true
	}
	var top []proc
	for _, p := range matched {
		if !isMatch[p.ppid] {
			top = append(top, p)
		}
	}
	return top, nil
}

func (p proc) named(name string) bool {
	if p.comm == name || (len(name) > commLen && p.comm == name[:commLen]) {
		return true
	}
	return p.argv0 != "" && filepath.Base(p.argv0) == name
}

// readProc reads pid's comm, parent and state from stat, and argv[0] from
// cmdline.
func readProc(procRoot string, pid int) (proc, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return proc{}, fmt.Errorf("signal: reading %s: %w", filepath.Join(dir, "stat"), unwrapPath(err))
	}
	// "pid (comm) state ppid ...": comm may hold spaces and ')', so split at
	// the last ')'.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return proc{}, fmt.Errorf("signal: %s: unexpected format", filepath.Join(dir, "stat"))
	}
	rest := strings.Fields(string(stat[end+1:]))
	if len(rest) < 2 {
		return proc{}, fmt.Errorf("signal: %s: unexpected format", filepath.Join(dir, "stat"))
	}
	ppid, err := strconv.Atoi(rest[1])
	if err != nil {
		return proc{}, fmt.Errorf("signal: %s: unexpected parent pid %q", filepath.Join(dir, "stat"), rest[1])
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return proc{}, fmt.Errorf("signal: reading %s: %w", filepath.Join(dir, "cmdline"), unwrapPath(err))
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return proc{
		pid:    pid,
		ppid:   ppid,
		comm:   string(stat[open+1 : end]),
		argv0:  string(argv0),
		zombie: rest[0] == "Z",
	}, nil
}

// readUID returns the real uid of pid, for telling the operator whom to run
// the agent as.
func readUID(procRoot string, pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, errors.New("no Uid line")
}

// gone reports whether err means the process exited while we looked at it.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// unwrapPath drops the *fs.PathError wrapper where the message already names
// the path.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}
