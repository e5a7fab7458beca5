package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// maxTaskDef bounds what lint reads from one input; ECS caps a task
// definition at 64 KiB, so this is generous.
const maxTaskDef = 8 << 20

// runLint checks task definition files (or "-" for stdin). Exit 1 when a
// finding reaches --fail-on, 2 on a usage error or an unreadable input; the
// readable inputs are still reported.
func runLint(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "output format: text, json or sarif")
	failOn := fs.String("fail-on", "error", "exit 1 when a finding has this severity or higher: error, warning, note or none")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: agent lint [--format text|json|sarif] [--fail-on error|warning|note|none] FILE... (- for stdin)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	switch *format {
	case "text", "json", "sarif":
	default:
		return usageErr(stderr, "lint: --format %q is not text, json or sarif", *format)
	}
	threshold := lint.Severity(0)
	if *failOn != "none" {
		s, err := lint.ParseSeverity(*failOn)
		if err != nil {
			return usageErr(stderr, "lint: --fail-on %q is not error, warning, note or none", *failOn)
		}
		threshold = s
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{code: exitUsage, msg: "lint: no file"}
	}

	var findings []lint.Finding
	unreadable := 0
	for _, file := range fs.Args() {
		name, data, err := readInput(file, stdin)
		if err == nil {
			var td *taskdef.TaskDef
			if td, err = taskdef.Parse(data); err == nil {
				findings = append(findings, lint.Check(name, td)...)
				continue
			}
		}
		unreadable++
		fmt.Fprintf(stderr, "agent lint: %s: %v\n", name, err)
	}

	var err error
	switch *format {
	case "text":
		err = lint.WriteText(stdout, fs.NArg()-unreadable, findings)
	case "json":
		err = lint.WriteJSON(stdout, fs.NArg()-unreadable, findings)
	case "sarif":
		err = lint.WriteSARIF(stdout, version, findings)
	}
	switch {
	case err != nil:
		return fmt.Errorf("lint: writing the report: %w", err)
	case unreadable > 0:
		return &exitError{code: exitUsage, msg: fmt.Sprintf("lint: %d unreadable input(s)", unreadable)}
	}
	for _, f := range findings {
		if threshold != 0 && f.Severity >= threshold {
			return &exitError{code: exitFailed, msg: fmt.Sprintf("lint: findings at or above %s", threshold)}
		}
	}
	return nil
}

// readInput reads a file, or stdin for "-", up to maxTaskDef.
func readInput(file string, stdin io.Reader) (string, []byte, error) {
	name, r := file, stdin
	if file == "-" {
		name = "<stdin>"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return name, nil, errors.Unwrap(err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxTaskDef+1))
	switch {
	case err != nil:
		return name, nil, fmt.Errorf("reading: %w", err)
	case len(data) > maxTaskDef:
		return name, nil, fmt.Errorf("larger than %d bytes: not a task definition", maxTaskDef)
	}
	return name, data, nil
}
