// Command testapp stands in for an application in the compose test
// (deploy/compose): it reads secret files and environment variables at start
// and again on every SIGHUP, and prints what it read as one marker line each
// time, so a test can watch the agent's files, environment and signals reach
// an app.
//
//	testapp [-dir /run/secrets] [-pidfile FILE] [-env NAME,...] [-ls DIR,...] [NAME...]
//
// Each marker line is "TESTAPP " and a JSON object:
//
//	{"event":"start"|"reload","pid":7,"ppid":1,"uid":65532,
//	 "values":{"NAME":"content"},"env":{"NAME":"value"},"dirs":{"DIR":["entry"]}}
//
// values holds the files NAME... under -dir; a file that cannot be read
// appears as "!error: ...". env holds the -env variables that are set (an
// unset one is absent). dirs lists the entries of each -ls directory, sorted;
// one that cannot be read appears as ["!error: ..."]. SIGTERM or SIGINT ends
// it with exit 0. The values are printed on purpose: they are made-up test
// values, and printing them is the point.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var w watched
	fs.StringVar(&w.dir, "dir", "/run/secrets", "directory of the secret files")
	pidFile := fs.String("pidfile", "", "write the pid to `FILE`")
	fs.Func("env", "print the environment variables `NAME,...`", func(v string) error {
		w.env = append(w.env, splitList(v)...)
		return nil
	})
	fs.Func("ls", "list the entries of the directories `DIR,...`", func(v string) error {
		w.dirs = append(w.dirs, splitList(v)...)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w.files = fs.Args()
	if len(w.files) == 0 && len(w.env) == 0 && len(w.dirs) == 0 {
		fmt.Fprintln(stderr, "testapp: name at least one file to read, -env or -ls")
		return 2
	}
	// Register before reporting "start", so a signal sent as soon as the
	// start line appears is never lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(stderr, "testapp:", err)
			return 1
		}
	}
	if err := report(stdout, "start", w); err != nil {
		fmt.Fprintln(stderr, "testapp:", err)
		return 1
	}
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			return 0
		}
		if err := report(stdout, "reload", w); err != nil {
			fmt.Fprintln(stderr, "testapp:", err)
			return 1
		}
	}
	return 0
}

// watched is what testapp reads each time it reports.
type watched struct {
	dir   string
	files []string
	env   []string
	dirs  []string
}

// Marker is one line testapp prints, after the "TESTAPP " prefix.
type Marker struct {
	Event  string              `json:"event"`
	PID    int                 `json:"pid"`
	PPID   int                 `json:"ppid"`
	UID    int                 `json:"uid"`
	Values map[string]string   `json:"values"`
	Env    map[string]string   `json:"env,omitempty"`
	Dirs   map[string][]string `json:"dirs,omitempty"`
}

func report(w io.Writer, event string, what watched) error {
	m := Marker{Event: event, PID: os.Getpid(), PPID: os.Getppid(), UID: os.Getuid(), Values: map[string]string{}}
	for _, n := range what.files {
		b, err := os.ReadFile(filepath.Join(what.dir, n))
		if err != nil {
			m.Values[n] = "!error: " + err.Error()
			continue
		}
		m.Values[n] = string(b)
	}
	if len(what.env) > 0 {
		m.Env = map[string]string{}
		for _, n := range what.env {
			if v, ok := os.LookupEnv(n); ok {
				m.Env[n] = v
			}
		}
	}
	if len(what.dirs) > 0 {
		m.Dirs = map[string][]string{}
		for _, d := range what.dirs {
			entries, err := os.ReadDir(d) // sorted by name
			if err != nil {
				m.Dirs[d] = []string{"!error: " + err.Error()}
				continue
			}
			names := []string{}
			for _, e := range entries {
				names = append(names, e.Name())
			}
			m.Dirs[d] = names
		}
	}
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "TESTAPP %s\n", line)
	return err
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
