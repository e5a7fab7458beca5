package render

import (
	"fmt"
	"strings"
	"text/template/parse"
)

// parseTree parses text with text/template's parser and rejects, before
// anything runs, every construct the evaluator does not implement. Errors
// read like the parser's own: "template: NAME:LINE: what".
func parseTree(name, text string) (*parse.Tree, error) {
	tree := parse.New(name)
	tree.Mode = parse.ParseComments
	trees := make(map[string]*parse.Tree)
	if _, err := tree.Parse(text, "", "", trees, funcs()); err != nil {
		return nil, err
	}
	c := checker{name: name, text: text}
	if err := c.check(tree.Root); err != nil {
		return nil, err
	}
	// define, and the body of block, add trees of their own. A define named
	// like the template itself even replaces an empty main tree. Report the
	// first in the text.
	var define parse.Node
	for _, other := range trees {
		if other != tree && (define == nil || other.Root.Position() < define.Position()) {
			define = other.Root
		}
	}
	if define != nil {
		return nil, c.unsupported(define, "define")
	}
	return tree, nil
}

type checker struct{ name, text string }

// unsupported is the error for construct what at node n.
func (c checker) unsupported(n parse.Node, what string) error {
	line := 1 + strings.Count(c.text[:n.Position()], "\n")
	return fmt.Errorf("template: %s:%d: %s is not supported", c.name, line, what)
}

// unsupportedField is the error for .Field, $x.Field or (pipeline).Field.
func (c checker) unsupportedField(n parse.Node) error {
	return fmt.Errorf(`%w: dot holds no secrets; use secret "NAME" or key "NAME" "field"`,
		c.unsupported(n, fmt.Sprintf("field access %s", n)))
}

// check returns an error for the first node under n that the evaluator
// does not implement.
func (c checker) check(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode,
		*parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode,
		*parse.DotNode, *parse.IdentifierNode:
		return nil
	case *parse.ListNode:
		if n == nil { // an absent else
			return nil
		}
		for _, node := range n.Nodes {
			if err := c.check(node); err != nil {
				return err
			}
		}
		return nil
	case *parse.ActionNode:
		return c.check(n.Pipe)
	case *parse.IfNode:
		return c.checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return c.checkBranch(&n.BranchNode)
	case *parse.PipeNode:
		for _, cmd := range n.Cmds {
			if err := c.check(cmd); err != nil {
				return err
			}
		}
		return nil
	case *parse.CommandNode:
		for _, arg := range n.Args {
			if err := c.check(arg); err != nil {
				return err
			}
		}
		return nil
	case *parse.VariableNode:
		if len(n.Ident) > 1 { // $x.Field
			return c.unsupportedField(n)
		}
		return nil
	case *parse.FieldNode:
		return c.unsupportedField(n)
	case *parse.ChainNode:
		return c.unsupportedField(n)
	case *parse.RangeNode:
		return c.unsupported(n, "range")
	case *parse.TemplateNode:
		return c.unsupported(n, c.templateKeyword(n))
	case *parse.BreakNode:
		return c.unsupported(n, "break")
	case *parse.ContinueNode:
		return c.unsupported(n, "continue")
	}
	return c.unsupported(n, fmt.Sprintf("%q", n))
}

func (c checker) checkBranch(b *parse.BranchNode) error {
	if err := c.check(b.Pipe); err != nil {
		return err
	}
	if err := c.check(b.List); err != nil {
		return err
	}
	return c.check(b.ElseList)
}

// templateKeyword tells {{ block "x" . }} from {{ template "x" }}: both make
// a TemplateNode positioned at the name, right after the keyword.
func (c checker) templateKeyword(n *parse.TemplateNode) string {
	if strings.HasSuffix(strings.TrimRight(c.text[:n.Position()], " \t\r\n"), "block") {
		return "block"
	}
	return "template"
}
