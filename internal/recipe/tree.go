package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// The two input formats are first read into one small generic tree, so that the schema is
// walked once, by the same code, whatever the format: YAML and JSON then accept exactly the
// same recipes and report the same problems at the same paths.

type kind int

const (
	kindNull kind = iota
	kindString
	kindInt
	kindFloat
	kindBool
	kindMap
	kindList
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindString:
		return "a string"
	case kindInt:
		return "an integer"
	case kindFloat:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindMap:
		return "a mapping"
	case kindList:
		return "a list"
	}
	return "unknown"
}

// node is one value of the generic tree.
type node struct {
	kind kind
	// text is a scalar's source text (for strings, the string itself).
	text string
	i    int64 // kindInt
	b    bool  // kindBool
	// keys and vals are a mapping's members in source order (keys are unique).
	keys []string
	vals []*node
	// items are a list's elements.
	items []*node
	line  int
}

// maxDepth bounds nesting far above what the schema needs (4 levels) and far below what
// could exhaust a stack.
const maxDepth = 64

// syntaxError is a document-level problem found while reading the tree.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return e.msg
}

// treeFromYAML reads exactly one YAML document. Anchors, aliases, merge keys and custom tags
// are refused: a recipe has no use for them and aliases are the way to a "billion laughs"
// expansion.
func treeFromYAML(data []byte) (root *node, err error) {
	// The YAML library is a port of a C parser; a panic on some malformed input must
	// become an error, never a crash of the server that parses a user's recipe.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &syntaxError{msg: fmt.Sprintf("malformed YAML (%v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &syntaxError{msg: "the recipe is empty"}
		}
		return nil, &syntaxError{msg: yamlMessage(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, &syntaxError{msg: yamlMessage(err)}
		}
		return nil, &syntaxError{line: extra.Line, msg: "more than one YAML document; a recipe is a single document"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &syntaxError{msg: "the recipe is empty"}
	}
	return convertYAML(doc.Content[0], 0)
}

func yamlMessage(err error) string {
	// yaml.v3 prefixes its messages with "yaml: "; the user already knows the format.
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	return msg
}

func convertYAML(y *yaml.Node, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if y.Kind == yaml.AliasNode {
		return nil, &syntaxError{line: y.Line, msg: "YAML aliases (*name) are not allowed in a recipe"}
	}
	if y.Anchor != "" {
		return nil, &syntaxError{line: y.Line, msg: "YAML anchors (&name) are not allowed in a recipe"}
	}
	n := &node{line: y.Line}
	switch y.Kind {
	case yaml.MappingNode:
		n.kind = kindMap
		seen := make(map[string]int, len(y.Content)/2)
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			if k.Kind == yaml.AliasNode || k.Anchor != "" {
				return nil, &syntaxError{line: k.Line, msg: "YAML anchors and aliases are not allowed in a recipe"}
			}
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				if k.ShortTag() == "!!merge" {
					return nil, &syntaxError{line: k.Line, msg: "YAML merge keys (<<) are not allowed in a recipe"}
				}
				return nil, &syntaxError{line: k.Line, msg: fmt.Sprintf("mapping key %q is not a string", k.Value)}
			}
			if first, dup := seen[k.Value]; dup {
				return nil, &syntaxError{line: k.Line, msg: fmt.Sprintf("key %q appears twice (first on line %d)", k.Value, first)}
			}
			seen[k.Value] = k.Line
			c, err := convertYAML(v, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k.Value)
			n.vals = append(n.vals, c)
		}
	case yaml.SequenceNode:
		n.kind = kindList
		for _, item := range y.Content {
			c, err := convertYAML(item, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, c)
		}
	case yaml.ScalarNode:
		n.text = y.Value
		switch tag := y.ShortTag(); tag {
		case "!!str", "!!timestamp":
			// A plain 2024-01-01 resolves to a timestamp; as text it is just a string.
			n.kind = kindString
		case "!!null":
			n.kind = kindNull
		case "!!bool":
			n.kind = kindBool
			if err := y.Decode(&n.b); err != nil {
				return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("bad boolean %q", y.Value)}
			}
		case "!!int":
			n.kind = kindInt
			if err := y.Decode(&n.i); err != nil {
				// Out of int64 range: still a number, just not a usable integer.
				n.kind = kindFloat
			}
		case "!!float":
			n.kind = kindFloat
		default:
			return nil, &syntaxError{line: y.Line, msg: fmt.Sprintf("YAML tag %s is not allowed in a recipe", tag)}
		}
	default:
		return nil, &syntaxError{line: y.Line, msg: "unexpected YAML node"}
	}
	return n, nil
}

// treeFromJSON reads exactly one JSON value, refusing duplicate keys (encoding/json would
// silently keep the last one, which hides mistakes).
func treeFromJSON(data []byte) (*node, error) {
	p := &jsonReader{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	tok, err := p.token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &syntaxError{msg: "the recipe is empty"}
		}
		return nil, err
	}
	root, err := p.value(tok, 0)
	if err != nil {
		return nil, err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &syntaxError{line: p.line(), msg: "unexpected data after the JSON value"}
	}
	return root, nil
}

type jsonReader struct {
	data []byte
	dec  *json.Decoder
}

// line is the 1-based line of the decoder's current offset.
func (p *jsonReader) line() int {
	off := int(p.dec.InputOffset())
	if off > len(p.data) {
		off = len(p.data)
	}
	return bytes.Count(p.data[:off], []byte("\n")) + 1
}

func (p *jsonReader) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := bytes.Count(p.data[:min(int(se.Offset), len(p.data))], []byte("\n")) + 1
			return nil, &syntaxError{line: line, msg: se.Error()}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &syntaxError{line: p.line(), msg: "unexpected end of JSON"}
		}
		return nil, &syntaxError{line: p.line(), msg: err.Error()}
	}
	return tok, nil
}

func (p *jsonReader) value(tok json.Token, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, &syntaxError{line: p.line(), msg: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	n := &node{line: p.line()}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.kind = kindMap
			seen := map[string]int{}
			for {
				kt, err := p.token()
				if err != nil {
					return nil, p.eof(err)
				}
				if d, ok := kt.(json.Delim); ok && d == '}' {
					return n, nil
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &syntaxError{line: p.line(), msg: "object key is not a string"}
				}
				keyLine := p.line()
				if first, dup := seen[key]; dup {
					return nil, &syntaxError{line: keyLine, msg: fmt.Sprintf("key %q appears twice (first on line %d)", key, first)}
				}
				seen[key] = keyLine
				vt, err := p.token()
				if err != nil {
					return nil, p.eof(err)
				}
				c, err := p.value(vt, depth+1)
				if err != nil {
					return nil, err
				}
				c.line = keyLine
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, c)
			}
		case '[':
			n.kind = kindList
			for {
				it, err := p.token()
				if err != nil {
					return nil, p.eof(err)
				}
				if d, ok := it.(json.Delim); ok && d == ']' {
					return n, nil
				}
				c, err := p.value(it, depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, c)
			}
		default:
			return nil, &syntaxError{line: p.line(), msg: fmt.Sprintf("unexpected %q", rune(t))}
		}
	case string:
		n.kind, n.text = kindString, t
	case json.Number:
		n.text = t.String()
		if i, err := strconv.ParseInt(n.text, 10, 64); err == nil {
			n.kind, n.i = kindInt, i
		} else {
			n.kind = kindFloat
		}
	case bool:
		n.kind, n.b = kindBool, t
		n.text = strconv.FormatBool(t)
	case nil:
		n.kind = kindNull
	default:
		return nil, &syntaxError{line: p.line(), msg: fmt.Sprintf("unexpected JSON token %v", tok)}
	}
	return n, nil
}

func (p *jsonReader) eof(err error) error {
	if errors.Is(err, io.EOF) {
		return &syntaxError{line: p.line(), msg: "unexpected end of JSON"}
	}
	return err
}
