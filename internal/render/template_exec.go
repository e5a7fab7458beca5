package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template/parse"
)

// The evaluator follows text/template's exec.go for the subset parseTree
// accepts, including its error messages. A value is nil, string, bool, int,
// float64 or complex128: the types constants, helpers and builtins produce.

// state is one Execute call.
type state struct {
	t    *Template
	h    helpers
	out  bytes.Buffer
	vars []variable // a stack; if and with pop what they pushed
}

type variable struct {
	name  string
	value any
}

// errorf is an error at node n, formatted like text/template's ExecError:
// "template: NAME:LINE:COL: executing "NAME" at <NODE>: message". NODE is the
// node as written in the template, never a value.
func (s *state) errorf(n parse.Node, format string, args ...any) error {
	location, context := s.t.tree.ErrorContext(n)
	return fmt.Errorf("template: %s: executing %q at <%s>: %w", location, s.t.name, context, fmt.Errorf(format, args...))
}

func (s *state) walk(dot any, node parse.Node) error {
	switch n := node.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := s.walk(dot, c); err != nil {
				return err
			}
		}
	case *parse.TextNode:
		s.out.Write(n.Text)
	case *parse.CommentNode:
	case *parse.ActionNode:
		// Variables declared here persist until the enclosing end; an
		// action that declares variables prints nothing.
		v, err := s.evalPipeline(dot, n.Pipe)
		if err != nil {
			return err
		}
		if len(n.Pipe.Decl) == 0 {
			s.print(v)
		}
	case *parse.IfNode:
		return s.walkIfOrWith(false, dot, &n.BranchNode)
	case *parse.WithNode:
		return s.walkIfOrWith(true, dot, &n.BranchNode)
	default:
		// parseTree rejected it.
		return s.errorf(node, "unknown node")
	}
	return nil
}

// walkIfOrWith runs an if or a with; with also sets dot.
func (s *state) walkIfOrWith(with bool, dot any, b *parse.BranchNode) error {
	mark := len(s.vars)
	defer func() { s.vars = s.vars[:mark] }()
	v, err := s.evalPipeline(dot, b.Pipe)
	if err != nil {
		return err
	}
	switch {
	case truth(v) && with:
		return s.walk(v, b.List)
	case truth(v):
		return s.walk(dot, b.List)
	case b.ElseList != nil:
		return s.walk(dot, b.ElseList)
	}
	return nil
}

func (s *state) print(v any) {
	if v == nil {
		s.out.WriteString("<no value>")
		return
	}
	fmt.Fprint(&s.out, v)
}

// evalPipeline runs the commands in turn, each one's result the last
// argument of the next, then declares or assigns the variables.
func (s *state) evalPipeline(dot any, pipe *parse.PipeNode) (any, error) {
	var (
		value    any
		hasFinal bool
	)
	for _, cmd := range pipe.Cmds {
		v, err := s.evalCommand(dot, cmd, value, hasFinal)
		if err != nil {
			return nil, err
		}
		value, hasFinal = v, true
	}
	for _, v := range pipe.Decl {
		if pipe.IsAssign {
			if err := s.setVar(v, value); err != nil {
				return nil, err
			}
		} else {
			s.vars = append(s.vars, variable{name: v.Ident[0], value: value})
		}
	}
	return value, nil
}

func (s *state) setVar(v *parse.VariableNode, value any) error {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == v.Ident[0] {
			s.vars[i].value = value
			return nil
		}
	}
	return s.errorf(v, "undefined variable: %s", v.Ident[0])
}

// varValue is the value of $x. The parser checks that $x is declared, but
// {{ if … }}{{ $x := … }}{{ else }}{{ $x }}{{ end }} passes its check and
// fails here, as in text/template.
func (s *state) varValue(v *parse.VariableNode) (any, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == v.Ident[0] {
			return s.vars[i].value, nil
		}
	}
	return nil, s.errorf(v, "undefined variable: %s", v.Ident[0])
}

// evalCommand runs one command; final is the previous command's result, if
// hasFinal.
func (s *state) evalCommand(dot any, cmd *parse.CommandNode, final any, hasFinal bool) (any, error) {
	first := cmd.Args[0]
	var value any // of a variable: looked up before the arguments are refused
	switch n := first.(type) {
	case *parse.IdentifierNode:
		return s.evalFunction(dot, n, cmd, cmd.Args[1:], final, hasFinal)
	case *parse.VariableNode:
		v, err := s.varValue(n)
		if err != nil {
			return nil, err
		}
		value = v
	}
	// Not a function: it takes no arguments.
	if len(cmd.Args) > 1 || hasFinal {
		return nil, s.errorf(first, "can't give argument to non-function %s", first)
	}
	switch n := first.(type) {
	case *parse.VariableNode:
		return value, nil
	case *parse.PipeNode:
		return s.evalPipeline(dot, n)
	case *parse.BoolNode:
		return n.True, nil
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return nil, s.errorf(n, "nil is not a command")
	case *parse.NumberNode:
		return s.idealConstant(n)
	case *parse.StringNode:
		return n.Text, nil
	}
	return nil, s.errorf(first, "can't evaluate command %q", first)
}

// idealConstant is the value of a number constant: its syntax picks the
// type, as in text/template.
func (s *state) idealConstant(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return n.Complex128, nil
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, nil
	case n.IsInt:
		i := int(n.Int64)
		if int64(i) != n.Int64 {
			return nil, s.errorf(n, "%s overflows int", n.Text)
		}
		return i, nil
	case n.IsUint:
		return nil, s.errorf(n, "%s overflows int", n.Text)
	}
	// Not reached: the parser rejects what is none of the above. text/template
	// yields no value here.
	return nil, nil
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// signature is a function's parameters: fixed of them, then any number
// more if variadic. strings are how many leading parameters are strings;
// the others take any value.
type signature struct {
	fixed    int
	variadic bool
	strings  int
}

func signatureOf(name string) signature {
	switch name {
	case "secret", "json", "base64", "base64decode", "shellquote", "trim":
		return signature{fixed: 1, strings: 1}
	case "key":
		return signature{fixed: 2, strings: 2}
	case "printf":
		return signature{fixed: 1, variadic: true, strings: 1}
	case "print":
		return signature{variadic: true}
	case "eq", "and", "or":
		return signature{fixed: 1, variadic: true}
	case "ne":
		return signature{fixed: 2}
	}
	return signature{fixed: 1} // not, len
}

// evalFunction calls the function id with args and, if hasFinal, final as
// the last argument. Call errors are reported at node: the command, or id
// itself when it is an argument.
func (s *state) evalFunction(dot any, id *parse.IdentifierNode, node parse.Node, args []parse.Node, final any, hasFinal bool) (any, error) {
	name := id.Ident
	sig := signatureOf(name)
	numIn := len(args)
	if hasFinal {
		numIn++
	}
	if sig.variadic {
		if numIn < sig.fixed {
			return nil, s.errorf(id, "wrong number of args for %s: want at least %d got %d", name, sig.fixed, len(args))
		}
	} else if numIn != sig.fixed {
		return nil, s.errorf(id, "wrong number of args for %s: want %d got %d", name, sig.fixed, numIn)
	}

	// and and or evaluate their arguments only as far as they must.
	if name == "and" || name == "or" {
		var v any
		for _, arg := range args {
			var err error
			if v, err = s.evalArg(dot, arg, false); err != nil {
				return nil, err
			}
			if truth(v) == (name == "or") {
				return v, nil
			}
		}
		if hasFinal {
			v = final
		}
		return v, nil
	}

	argv := make([]any, 0, numIn)
	for i, arg := range args {
		v, err := s.evalArg(dot, arg, i < sig.strings)
		if err != nil {
			return nil, err
		}
		argv = append(argv, v)
	}
	if hasFinal {
		if numIn-1 < sig.strings {
			if err := s.checkString(node, final); err != nil {
				return nil, err
			}
		}
		argv = append(argv, final)
	}
	v, err := s.call(name, argv)
	if err != nil {
		return nil, s.errorf(node, "error calling %s: %w", name, err)
	}
	return v, nil
}

// evalArg evaluates an argument; wantString if the parameter is a string.
func (s *state) evalArg(dot any, n parse.Node, wantString bool) (any, error) {
	var (
		v   any
		err error
	)
	switch n := n.(type) {
	case *parse.StringNode:
		return n.Text, nil
	case *parse.NilNode:
		if wantString {
			return nil, s.errorf(n, "cannot assign nil to string")
		}
		return nil, nil
	case *parse.BoolNode:
		if wantString {
			return nil, s.errorf(n, "expected string; found %s", n)
		}
		return n.True, nil
	case *parse.NumberNode:
		if wantString {
			return nil, s.errorf(n, "expected string; found %s", n)
		}
		return s.idealConstant(n)
	case *parse.DotNode:
		v = dot
	case *parse.VariableNode:
		v, err = s.varValue(n)
	case *parse.PipeNode:
		v, err = s.evalPipeline(dot, n)
	case *parse.IdentifierNode:
		v, err = s.evalFunction(dot, n, n, nil, nil, false)
	default:
		// parseTree rejected it.
		return nil, s.errorf(n, "can't handle %s for arg", n)
	}
	if err != nil {
		return nil, err
	}
	if wantString {
		if err := s.checkString(n, v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// checkString fails unless v, computed at n, is a string. The message names
// the type only, never the value.
func (s *state) checkString(n parse.Node, v any) error {
	switch v.(type) {
	case string:
		return nil
	case nil:
		return s.errorf(n, "invalid value; expected string")
	}
	return s.errorf(n, "wrong type for value; expected string; got %T", v)
}

// call runs function name on argv, whose count and string parameters
// evalFunction has checked.
func (s *state) call(name string, argv []any) (any, error) {
	str := func(i int) string { return argv[i].(string) }
	switch name {
	case "secret":
		return s.h.secret(str(0))
	case "key":
		return s.h.key(str(0), str(1))
	case "json":
		return jsonQuote(str(0))
	case "base64":
		return base64Encode(str(0)), nil
	case "base64decode":
		return base64Decode(str(0))
	case "shellquote":
		return shellQuote(str(0))
	case "trim":
		return strings.TrimSpace(str(0)), nil
	case "printf":
		return fmt.Sprintf(str(0), argv[1:]...), nil
	case "print":
		return fmt.Sprint(argv...), nil
	case "eq":
		return eq(argv[0], argv[1:]...)
	case "ne":
		equal, err := eq(argv[0], argv[1])
		return !equal, err
	case "not":
		return !truth(argv[0]), nil
	case "len":
		return length(argv[0])
	}
	return nil, fmt.Errorf("%s is not a function", name)
}

// truth is text/template's: false, 0, "" and nil are false.
func truth(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case bool:
		return v
	case int:
		return v != 0
	case float64:
		return v != 0
	case complex128:
		return v != 0
	}
	return true
}

// eq reports whether a equals any of bs, as text/template's eq: values of
// different types do not compare, except with nil, which equals only nil.
func eq(a any, bs ...any) (bool, error) {
	if len(bs) == 0 {
		return false, errors.New("missing argument for comparison")
	}
	for _, b := range bs {
		if a == nil || b == nil {
			if a == nil && b == nil {
				return true, nil
			}
			continue
		}
		if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
			return false, fmt.Errorf("incompatible types for comparison: %T and %T", a, b)
		}
		if a == b {
			return true, nil
		}
	}
	return false, nil
}

// length is len of a string; text/template's len also takes slices and
// maps, which templates here cannot make.
func length(v any) (int, error) {
	switch v := v.(type) {
	case string:
		return len(v), nil
	case nil:
		return 0, errors.New("len of nil")
	}
	return 0, fmt.Errorf("len of type %T", v)
}
