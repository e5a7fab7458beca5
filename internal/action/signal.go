package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	log      *slog.Logger
}

func newSignal(field string, c config.SignalAction, opts Options) (*signalAction, error) {
	if c.Process == "" && c.PIDFile == "" {
		return nil, fmt.Errorf("%s.signal: set process or pidFile (signalling the child needs exec mode)", field)
	}
	sig, name := signalOf(c)
	return &signalAction{
		process:  c.Process,
		pidFile:  c.PIDFile,
		sig:      sig,
		sigName:  name,
		procRoot: opts.ProcRoot,
		self:     opts.SelfPID,
		log:      opts.Log,
	}, nil
}

// signalOf is c's signal. config always sets it; a value built by hand that
// leaves it zero gets the default rather than kill(pid, 0), which sends
// nothing and reports success.
func signalOf(c config.SignalAction) (syscall.Signal, string) {
	if c.Signal == 0 {
		return syscall.SIGHUP, "SIGHUP"
	}
	if c.Name == "" {
		return c.Signal, "signal " + strconv.Itoa(int(c.Signal))
	}
	return c.Signal, c.Name
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

// Probe checks that the target can be found now: the pid file names a
// running process, or a process of that name is visible.
func (a *signalAction) Probe() error {
	if a.pidFile != "" {
		pid, err := a.readPIDFile()
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(a.procRoot, strconv.Itoa(pid))); err != nil {
			return notRunning(a.pidFile)
		}
		return nil
	}
	procs, all, err := findProcesses(a.procRoot, a.process, a.self)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return a.noProcess(all)
	}
	return nil
}

// notRunning does not show the pid: a number that names no process may not
// be a pid at all, but a secret's digits.
func notRunning(pidFile string) error {
	return fmt.Errorf("signal: the pid in %s names no running process: the pid file is stale, or the agent and the app do not share a PID namespace (pidMode: \"task\" in the task definition)", pidFile)
}

// readPIDFile reads the pid file and checks it does not name the agent.
func (a *signalAction) readPIDFile() (int, error) {
	pid, err := readPIDFile(a.pidFile)
	if err != nil {
		return 0, err
	}
	if pid == a.self {
		return 0, fmt.Errorf("signal: pid file %s names the agent itself (pid %d)", a.pidFile, pid)
	}
	return pid, nil
}

func (a *signalAction) runPIDFile() error {
	pid, err := a.readPIDFile()
	if err != nil {
		return err
	}
	err = syscall.Kill(pid, a.sig)
	if errors.Is(err, syscall.ESRCH) {
		return notRunning(a.pidFile)
	}
	if err != nil {
		name := ""
		if p, rerr := readProc(a.procRoot, pid); rerr == nil {
			name = p.comm
		}
		return a.killError(pid, name, err)
	}
	a.log.Info(fmt.Sprintf("sent %s to pid %d", a.sigName, pid), "action", "signal", "signal", a.sigName, "pid", pid, "pid_file", a.pidFile)
	return nil
}

// readPIDFile never shows the file's content in an error: a pidFile pointing
// at the wrong file may point at a secret.
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
		return 0, fmt.Errorf("signal: pid file %s holds %d bytes of text, not a process id", path, len(s))
	}
	if err != nil || pid <= 0 {
		// pid <= 0 would signal a process group or every process.
		return 0, fmt.Errorf("signal: pid file %s holds a %d-digit number that is not a positive process id", path, len(strings.TrimLeft(s, "+-")))
	}
	return int(pid), nil
}

// noProcess says why no process is named a.process, from what is visible:
// only the agent's own processes means no shared PID namespace; others mean
// a wrong name.
func (a *signalAction) noProcess(all []proc) error {
	others := othersThanOwn(all, a.self)
	if len(others) == 0 {
		return fmt.Errorf("signal: no process named %q is visible, and no process outside the agent's own: the agent and the app must share a PID namespace (pidMode: \"task\" in the task definition)", a.process)
	}
	names := map[string]bool{}
	for _, p := range others {
		names[p.comm] = true
	}
	list := slices.Sorted(maps.Keys(names))
	more := ""
	if len(list) > maxNamesShown {
		more = fmt.Sprintf(" and %d more", len(list)-maxNamesShown)
		list = list[:maxNamesShown]
	}
	return fmt.Errorf("signal: no process named %q, though other processes are visible: check the name (visible: %s%s)", a.process, strings.Join(list, ", "), more)
}

// maxNamesShown bounds the process names an error lists.
const maxNamesShown = 10

// othersThanOwn leaves out self, its ancestors (an init such as tini) and
// its descendants: what a container sees of itself without pidMode: task.
func othersThanOwn(all []proc, self int) []proc {
	byPID := make(map[int]proc, len(all))
	for _, p := range all {
		byPID[p.pid] = p
	}
	own := map[int]bool{self: true}
	for pid := self; ; {
		p, ok := byPID[pid]
		if !ok || own[p.ppid] || p.ppid <= 0 {
			break
		}
		own[p.ppid] = true
		pid = p.ppid
	}
	descends := func(p proc) bool {
		for seen := 0; seen < len(all); seen++ {
			if p.ppid == self {
				return true
			}
			parent, ok := byPID[p.ppid]
			if !ok {
				return false
			}
			p = parent
		}
		return false
	}
	var others []proc
	for _, p := range all {
		if !own[p.pid] && !descends(p) {
			others = append(others, p)
		}
	}
	return others
}

func (a *signalAction) runProcess() error {
	procs, all, err := findProcesses(a.procRoot, a.process, a.self)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return a.noProcess(all)
	}
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		pids := make([]int, len(procs))
		for i, p := range procs {
			pids[i] = p.pid
		}
		a.log.Debug("signal: processes matched", "process", a.process, "pids", pids, "visible", len(all))
	}
	var errs []error
	sent := 0
	for _, p := range procs {
		err := syscall.Kill(p.pid, a.sig)
		switch {
		case err == nil:
			sent++
			a.log.Info(fmt.Sprintf("sent %s to pid %d", a.sigName, p.pid), "action", "signal", "signal", a.sigName, "pid", p.pid, "process", p.comm)
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
// to nginx's master, which tells its workers, not to each worker. all is
// every live process seen, self included, for telling why none matched.
func findProcesses(procRoot, name string, self int) (top, all []proc, err error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("signal: listing processes in %s: %w", procRoot, unwrapPath(err))
	}
	var matched []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, err := readProc(procRoot, pid)
		if gone(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if p.zombie {
			continue
		}
		all = append(all, p)
		if pid != self && p.named(name) {
			matched = append(matched, p)
		}
	}
	isMatch := make(map[int]bool, len(matched))
	for _, p := range matched {
		isMatch[p.pid] = true
	}
	for _, p := range matched {
		if !isMatch[p.ppid] {
			top = append(top, p)
		}
	}
	return top, all, nil
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
