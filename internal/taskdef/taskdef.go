// Package taskdef reads ECS task definitions in the shapes users have them
// and turns each into the shape of a register-task-definition input: the
// generic JSON (so a rewrite keeps every field, known or not) and a typed
// view of it.
package taskdef

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// Shape is the form the input was written in.
type Shape int

const (
	// Describe is the output of `aws ecs describe-task-definition`:
	// {"taskDefinition": {…}, "tags": […]}.
	Describe Shape = iota + 1
	// Register is a `register-task-definition --cli-input-json` input.
	Register
	// Containers is a bare container-definitions array.
	Containers
)

func (s Shape) String() string {
	switch s {
	case Describe:
		return "describe-task-definition output"
	case Register:
		return "register-task-definition input"
	case Containers:
		return "container definitions array"
	}
	return "Shape(" + strconv.Itoa(int(s)) + ")"
}

// readOnly are the fields describe-task-definition returns that
// register-task-definition rejects.
var readOnly = [...]string{
	"taskDefinitionArn", "revision", "status", "requiresAttributes",
	"compatibilities", "registeredAt", "registeredBy", "deregisteredAt",
}

// TaskDef is one task definition in register-input shape.
type TaskDef struct {
	Shape Shape
	// Raw is the register input as generic JSON, read-only fields dropped.
	Raw map[string]any
	// Input is the typed view of Raw.
	Input ecs.RegisterTaskDefinitionInput

	lines map[string]int // JSON path in the input as written → line
}

// Parse reads one task definition in any Shape. Error messages never quote
// the input's values, only its structure.
func Parse(data []byte) (*TaskDef, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: more than one value")
	}
	td := &TaskDef{}
	switch v := doc.(type) {
	case []any:
		td.Shape, td.Raw = Containers, map[string]any{"containerDefinitions": v}
	case map[string]any:
		// containerDefinitions first: a register shape always re-reads as one.
		if _, ok := v["containerDefinitions"]; ok {
			td.Shape, td.Raw = Register, v
		} else if inner, ok := v["taskDefinition"]; ok {
			m, ok := inner.(map[string]any)
			if !ok {
				return nil, errors.New(`"taskDefinition" is not an object`)
			}
			td.Shape, td.Raw = Describe, m
			for _, k := range readOnly {
				delete(m, k)
			}
			if tags, ok := v["tags"].([]any); ok && len(tags) > 0 {
				m["tags"] = tags
			}
		} else {
			return nil, errors.New(`not a task definition: want {"taskDefinition": …} (describe-task-definition output), {"containerDefinitions": […], …} (register-task-definition input) or a container definitions array`)
		}
	default:
		return nil, errors.New("not a task definition: want a JSON object or array")
	}
	if _, ok := td.Raw["containerDefinitions"].([]any); !ok {
		return nil, errors.New(`"containerDefinitions" is not an array`)
	}
	typed, err := json.Marshal(td.Raw)
	if err != nil {
		return nil, fmt.Errorf("re-encoding: %w", err)
	}
	if err := json.Unmarshal(typed, &td.Input); err != nil {
		return nil, jsonErr(err)
	}
	td.lines = lineIndex(data)
	return td, nil
}

// jsonErr describes a decoding error by position and type only: encoding/json
// quotes a mistyped number ("number 1234"), which could be a secret.
func jsonErr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("%s: want %s", jsonPath(typ.Field), typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("invalid JSON: unexpected end of input")
	}
	return errors.New("invalid JSON")
}

// jsonPath turns the SDK's Go field path ("ContainerDefinitions.Environment")
// into the JSON names users wrote ("containerDefinitions.environment").
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToLower(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, ".")
}

// Line is the 1-based line of a register-shape path ("containerDefinitions[1].environment[0]")
// in the input as written, or 0 if unknown.
func (td *TaskDef) Line(path string) int {
	if td == nil {
		return 0
	}
	switch td.Shape {
	case Describe:
		path = "taskDefinition." + path
	case Containers:
		const p = "containerDefinitions"
		if len(path) >= len(p) && path[:len(p)] == p {
			path = path[len(p):]
		}
	}
	return td.lines[path]
}

// lineIndex maps every JSON path of data to the line its value starts on.
// data has already decoded once, so an error here only ends the index early.
func lineIndex(data []byte) map[string]int {
	var newlines []int
	for i, b := range data {
		if b == '\n' {
			newlines = append(newlines, i)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lines := map[string]int{}
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		// The offset is just past the value's first token, on its line.
		lines[path] = sort.SearchInts(newlines, int(dec.InputOffset())-1) + 1
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				p := key
				if path != "" {
					p = path + "." + key
				}
				if err := walk(p); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(path + "[" + strconv.Itoa(i) + "]"); err != nil {
					return err
				}
			}
			_, err = dec.Token()
		}
		return err
	}
	_ = walk("")
	return lines
}
