package render

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template/parse"
	"unicode/utf8"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Template is a template in Go text/template syntax, parsed by
// text/template/parse and evaluated by this package (template_exec.go).
//
// It does not use text/template's executor: that reaches methods through
// reflect.Value.MethodByName, and any such call keeps every exported method
// of every type in the binary, AWS SDK clients included (about 6 MB).
//
// The subset: text, comments, actions with pipelines and parenthesised
// pipelines, string, number and bool constants, nil as an argument,
// variables ($x := …, $x = …, $; $ and the top-level dot are nil), if / else /
// else if, with / else / else with, the trim markers {{- and -}}, our helpers
// and the builtins printf, print, eq, ne, not, and, or and len, with
// text/template's semantics. Everything else (range, template, define,
// block, field access such as .Name, other builtins) is a parse error.
type Template struct {
	name string
	text string
	tree *parse.Tree // read-only after ParseTemplate, shared by concurrent Executes
}

// ParseTemplate parses text; name appears in error messages.
func ParseTemplate(name, text string) (*Template, error) {
	tree, err := parseTree(name, text)
	if err != nil {
		return nil, fmt.Errorf("parse template %q: %w", name, err)
	}
	return &Template{name: name, text: text, tree: tree}, nil
}

// Execute renders with values (secret name → value). It returns the whole
// output or an error, never part of it, so the caller cannot write a partial
// file. Errors name the template and the secret or key, never a value.
//
// Helpers:
//
//	secret "NAME"        the value as a string
//	key "NAME" "field"   a top-level field of a JSON secret
//	json X               X as a JSON string literal
//	base64 X             standard base64 with padding
//	base64decode X       the reverse
//	shellquote X         X single-quoted for sh
//	trim X               X without leading and trailing white space
func (t *Template) Execute(values map[string]secret.Value) (secret.Value, error) {
	// Each call has its own state, so concurrent calls share only the
	// read-only tree.
	s := &state{t: t, h: helpers{text: t.text, values: values}}
	// $ and dot are nil: values are reached only through the helpers, never
	// printed by {{ . }} as a redacted placeholder.
	s.vars = append(s.vars, variable{name: "$"})
	if err := s.walk(nil, t.tree.Root); err != nil {
		return secret.Value{}, fmt.Errorf("render template %q: %w", t.name, err)
	}
	return secret.New(s.out.Bytes()), nil
}

// funcs are the functions a template may call: the parser rejects any other
// name. The values only mark the names as defined; calls are dispatched by
// name in call.
func funcs() map[string]any {
	m := make(map[string]any)
	for _, name := range []string{
		// helpers
		"secret", "key", "json", "base64", "base64decode", "shellquote", "trim",
		// text/template builtins
		"printf", "print", "eq", "ne", "not", "and", "or", "len",
	} {
		m[name] = true
	}
	return m
}

type helpers struct {
	text   string // the template's source, to tell literal names from computed ones
	values map[string]secret.Value
}

func (h helpers) secret(name string) (string, error) {
	v, ok := h.values[name]
	if !ok {
		return "", fmt.Errorf("secret %s not found", h.show(name))
	}
	return string(v.Bytes()), nil
}

func (h helpers) key(name, field string) (string, error) {
	v, ok := h.values[name]
	if !ok {
		return "", fmt.Errorf("secret %s not found", h.show(name))
	}
	f, err := v.Field(field)
	var notFound *secret.KeyNotFoundError
	if errors.As(err, &notFound) {
		return "", fmt.Errorf("key %s not found in secret %s", h.show(field), h.show(name))
	}
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", h.show(name), err)
	}
	return string(f.Bytes()), nil
}

// show quotes a secret or key name for an error message if it is written as a
// literal in the template. A name computed at run time, as in
// {{ secret (secret "A") }}, may be a secret's content and is not shown.
func (h helpers) show(name string) string {
	if strings.Contains(h.text, `"`+name+`"`) || strings.Contains(h.text, "`"+name+"`") {
		return fmt.Sprintf("%q", name)
	}
	return "(computed name, not shown)"
}

func jsonQuote(s string) (string, error) {
	if !utf8.ValidString(s) {
		// encoding/json would silently replace the bad bytes with U+FFFD.
		return "", errors.New("value is not valid UTF-8")
	}
	var buf bytes.Buffer
	writeJSONString(&buf, s)
	return buf.String(), nil
}

func base64Encode(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// CorruptInputError holds only an offset, never input bytes.
		return "", fmt.Errorf("value is not valid base64: %w", err)
	}
	return string(b), nil
}

func shellQuote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("value contains a NUL byte, which sh cannot hold")
	}
	var buf bytes.Buffer
	writeShellQuoted(&buf, []byte(s))
	return buf.String(), nil
}

// SecretNames lists, sorted and once each, the secret names the template
// writes as literals in `secret "NAME"` and `key "NAME" "field"`, so a
// configuration can be checked before any value is fetched. A computed name
// cannot be listed.
func (t *Template) SecretNames() []string {
	seen := map[string]bool{}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			if len(n.Args) >= 2 {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && (id.Ident == "secret" || id.Ident == "key") {
					if s, ok := n.Args[1].(*parse.StringNode); ok {
						seen[s.Text] = true
					}
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	walk(t.tree.Root)
	return slices.Sorted(maps.Keys(seen))
}
