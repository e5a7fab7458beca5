package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func rofsHint(dir string) string {
	return ` (the volume holding ` + dir + ` is read-only: mount it with "readOnly": false in the agent's mountPoints)`
}

func accessHint(uid int, dir string) string {
	return fmt.Sprintf(` (the agent runs as uid %d, which cannot write to %s: a bind-mount volume is owned by root with mode 0755 unless the image `+
		`that first mounts it has the directory with another owner; run the agent as root ("user": "0") or create the directory owned by uid %d in the agent's image)`, uid, dir, uid)
}

func chownHint(uid int) string {
	return fmt.Sprintf(` (the agent runs as uid %d, and only root can give a file another owner: run the agent as root ("user": "0") or remove uid and gid from the configuration)`, uid)
}

// The errors an operator fixes in the task definition say how, and stay
// matchable with errors.Is (issue 9 #22).
func TestExplainPermissionErrors(t *testing.T) {
	const uid = 1000
	rel := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "openat", Path: ".x.agent-tmp-0123456789abcdef", Err: errno}
	}
	tests := []struct {
		name  string
		err   error
		got   func(error) error
		want  string
		errno syscall.Errno
	}{
		{"read-only volume", rel(syscall.EROFS), func(e error) error { return explainAs(e, "/run/secrets", uid) },
			"openat .x.agent-tmp-0123456789abcdef: read-only file system" + rofsHint("/run/secrets"), syscall.EROFS},
		{"not writable", rel(syscall.EACCES), func(e error) error { return explainAs(e, "/run/secrets/api", uid) },
			"openat .x.agent-tmp-0123456789abcdef: permission denied" + accessHint(uid, "/run/secrets/api"), syscall.EACCES},
		{"output directory not creatable", &fs.PathError{Op: "mkdir", Path: "/run/secrets", Err: syscall.EACCES}, func(e error) error { return explainAs(e, "/run/secrets", uid) },
			"mkdir /run/secrets: permission denied" + accessHint(uid, "/run"), syscall.EACCES},
		{"chown refused", &fs.PathError{Op: "chown", Path: ".x", Err: syscall.EPERM}, func(e error) error { return explainChownAs(e, uid) },
			"chown .x: operation not permitted" + chownHint(uid), syscall.EPERM},
		// Root told to run as root would go round in circles.
		{"not writable for root", rel(syscall.EACCES), func(e error) error { return explainAs(e, "/mnt/efs", 0) },
			"openat .x.agent-tmp-0123456789abcdef: permission denied (the agent runs as root and still cannot write to /mnt/efs: the volume does not let root write, " +
				"as with an EFS access point or root squashing; give the agent a volume it can write)", syscall.EACCES},
		{"chown refused to root", &fs.PathError{Op: "chown", Path: ".x", Err: syscall.EPERM}, func(e error) error { return explainChownAs(e, 0) },
			"chown .x: operation not permitted (the agent runs as root, and the volume still refuses to change a file's owner, as NFS and EFS can: " +
				"remove uid and gid from the configuration)", syscall.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.got(tt.err)
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			if !errors.Is(err, tt.errno) {
				t.Errorf("errors.Is(err, %v) = false", tt.errno)
			}
		})
	}
	// Anything else is left alone.
	for _, e := range []error{rel(syscall.ENOSPC), rel(syscall.EIO)} {
		if explain(e, "/run/secrets") != e || explainChown(e) != e {
			t.Errorf("%v was changed", e)
		}
	}
}

// A read-only volume, end to end: OpenDir fails at once with the hint.
func TestOpenDirReadOnlyVolume(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Skipf("cannot mount a read-only tmpfs here (needs root and CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	_, err := OpenDir(t.Context(), dir, nil)
	want := fmt.Sprintf("output directory %q: lock file .agent.lock: openat .agent.lock: read-only file system", dir) + rofsHint(dir)
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("errors.Is(err, EROFS) = false: %v", err)
	}
}

const helperNonRootEnv = "RENDER_TEST_HELPER_NONROOT"

type nonRootResult struct {
	Case  string
	Error string
	Is    bool // errors.Is the expected errno
}

// TestHelperNonRoot is not a test: TestPermissionHintsAsNonRoot runs the
// test binary as this one, under another uid, and reads its results as
// JSON lines on stdout.
func TestHelperNonRoot(t *testing.T) {
	base := os.Getenv(helperNonRootEnv)
	if base == "" {
		t.Skip("helper process for TestPermissionHintsAsNonRoot")
	}
	enc := json.NewEncoder(os.Stdout)
	report := func(name string, err error, errno syscall.Errno) {
		r := nonRootResult{Case: name, Is: errors.Is(err, errno)}
		if err != nil {
			r.Error = err.Error()
		}
		_ = enc.Encode(r)
	}
	// The volume as ECS makes it: root's, 0755.
	_, err := OpenDir(t.Context(), filepath.Join(base, "rootowned"), nil)
	report("existing directory", err, syscall.EACCES)
	_, err = OpenDir(t.Context(), filepath.Join(base, "rootowned", "secrets"), nil)
	report("missing directory", err, syscall.EACCES)
	// Our own directory, but uid 0 asked for.
	d, err := OpenDir(t.Context(), filepath.Join(base, "mine"), nil)
	if err != nil {
		report("open own directory", err, 0)
		return
	}
	defer d.Close()
	_, err = d.Write(File{Path: "f", Data: secret.FromString("hunter2"), Mode: 0o400, UID: 0, GID: -1})
	report("chown", err, syscall.EPERM)
}

// As a non-root agent (the common case on Fargate): an unwritable volume
// and a uid it cannot chown to give the fix, not a bare errno.
func TestPermissionHintsAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child under another uid")
	}
	const nobody = 65534
	// A directory every uid can enter, with a copy of the test binary the
	// child's uid can run.
	base, err := os.MkdirTemp("", "render-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	for _, p := range []string{base, filepath.Join(base, "rootowned")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mine := filepath.Join(base, "mine")
	if err := os.Mkdir(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "render.test")
	copyFile(t, os.Args[0], bin)

	cmd := exec.Command(bin, "-test.run=^TestHelperNonRoot$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperNonRootEnv+"="+base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s%s", err, out, stderr.String())
	}
	var got []nonRootResult
	for line := range strings.SplitSeq(string(out), "\n") {
		var r nonRootResult
		if json.Unmarshal([]byte(line), &r) == nil && r.Case != "" {
			got = append(got, r)
		}
	}
	rootOwned := filepath.Join(base, "rootowned")
	want := []struct{ Case, Error string }{
		{"existing directory", regexp.QuoteMeta(fmt.Sprintf("output directory %q: lock file .agent.lock: openat .agent.lock: permission denied", rootOwned) + accessHint(nobody, rootOwned))},
		{"missing directory", regexp.QuoteMeta(fmt.Sprintf("create output directory %q: mkdir %s: permission denied", rootOwned+"/secrets", rootOwned+"/secrets") + accessHint(nobody, rootOwned))},
		{"chown", regexp.QuoteMeta(`write "f": chown temp file: chown `+mine+`/.f.agent-tmp-`) + `[0-9a-f]{16}` + regexp.QuoteMeta(": operation not permitted"+chownHint(nobody))},
	}
	if len(got) != len(want) {
		t.Fatalf("child reported %+v, want %d cases\n%s", got, len(want), stderr.String())
	}
	for i, w := range want {
		g := got[i]
		if g.Case != w.Case || !regexp.MustCompile("^"+w.Error+"$").MatchString(g.Error) {
			t.Errorf("%s: error\n%s\nwant (regexp)\n%s", w.Case, g.Error, w.Error)
		}
		if !g.Is {
			t.Errorf("%s: errors.Is on the errno is false", w.Case)
		}
		if strings.Contains(g.Error, "hunter2") {
			t.Errorf("%s: error shows the value", w.Case)
		}
	}
	if entries, _ := os.ReadDir(mine); len(entries) != 1 || entries[0].Name() != lockName {
		t.Errorf("left in the child's directory: %v, want only the lock file", entries)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
