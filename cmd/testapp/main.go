// Command testapp stands in for an application in the compose test
// (deploy/compose): it reads secret files at start and again on every SIGHUP,
// and prints what it read as one marker line each time, so a test can watch
// the agent's files and signals reach an app.
//
//	testapp [-dir /run/secrets] [-pidfile FILE] NAME...
//
// Each marker line is "TESTAPP " and a JSON object:
//
//	{"event":"start"|"reload","pid":1,"uid":65532,"values":{"NAME":"content"}}
//
// A file that cannot be read appears as "!error: ..." in values. SIGTERM or
// SIGINT ends it with exit 0. The values are printed on purpose: they are
// made-up test values, and printing them is the point.
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
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "/run/secrets", "directory of the secret files")
	pidFile := fs.String("pidfile", "", "write the pid to `FILE`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	names := fs.Args()
	if len(names) == 0 {
		fmt.Fprintln(stderr, "testapp: name at least one file to read")
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
	if err := report(stdout, "start", *dir, names); err != nil {
		fmt.Fprintln(stderr, "testapp:", err)
		return 1
	}
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			return 0
		}
		if err := report(stdout, "reload", *dir, names); err != nil {
			fmt.Fprintln(stderr, "testapp:", err)
			return 1
		}
	}
	return 0
}

// Marker is one line testapp prints, after the "TESTAPP " prefix.
type Marker struct {
	Event  string            `json:"event"`
	PID    int               `json:"pid"`
	UID    int               `json:"uid"`
	Values map[string]string `json:"values"`
}

func report(w io.Writer, event, dir string, names []string) error {
	m := Marker{Event: event, PID: os.Getpid(), UID: os.Getuid(), Values: map[string]string{}}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			m.Values[n] = "!error: " + err.Error()
			continue
		}
		m.Values[n] = string(b)
	}
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "TESTAPP %s\n", line)
	return err
}
