package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"debate/internal/spelling"
)

// MaxRecipeBytes bounds a recipe document before any parsing is attempted.
const MaxRecipeBytes = 1 << 20

// Format names the syntax of a recipe document.
type Format int

const (
	// Auto takes a document whose first non-blank character is '{' as JSON, else YAML.
	Auto Format = iota
	YAML
	JSON
)

func (f Format) String() string {
	switch f {
	case YAML:
		return "yaml"
	case JSON:
		return "json"
	default:
		return "auto"
	}
}

// ParseFormat reads a format name: "auto", "yaml" (or "yml") or "json".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return Auto, nil
	case "yaml", "yml":
		return YAML, nil
	case "json":
		return JSON, nil
	}
	return Auto, fmt.Errorf("unknown recipe format %q: use auto, yaml or json", s)
}

// Detect returns the format Auto resolves to for data.
func Detect(data []byte) Format {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return JSON
	}
	return YAML
}

// Parse reads a recipe document and checks it completely: structure (unknown fields,
// wrong types, missing required fields) and every field's grammar. All problems are
// reported at once in a *ValidationError (which matches ErrInvalid), each with its field
// path and, when known, its line.
//
// The recipe is returned as written, not normalised: an empty field means "not set", which
// composing layers needs to know. Call Normalize (or Canonical / Hash) for the canonical form.
func Parse(data []byte, format Format) (*Recipe, error) {
	if len(data) > MaxRecipeBytes {
		return nil, &ValidationError{Errors: []FieldError{{
			Code:    CodeTooLarge,
			Message: fmt.Sprintf("the recipe is %d bytes; the limit is %d bytes (1 MiB)", len(data), MaxRecipeBytes),
		}}}
	}
	if !utf8.Valid(data) {
		return nil, &ValidationError{Errors: []FieldError{{
			Code: CodeSyntax, Message: "the recipe is not valid UTF-8 text (binary file content belongs in contentBase64)",
		}}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if format == Auto {
		format = Detect(data)
	}
	var (
		root *node
		err  error
	)
	switch format {
	case JSON:
		root, err = treeFromJSON(data)
	case YAML:
		root, err = treeFromYAML(data)
	default:
		return nil, fmt.Errorf("recipe: unknown format %d", format)
	}
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &ValidationError{Errors: []FieldError{{Code: CodeSyntax, Message: se.msg, Line: se.line}}}
		}
		return nil, err
	}

	d := &decoder{lines: map[string]int{}, failed: map[string]bool{}}
	r := d.recipe(root)
	// Grammar checks run even when the structure had problems, so that one round shows
	// everything; problems under a field that already failed to decode are left out, as
	// they would only repeat the first one.
	if verr := Validate(r); verr != nil {
		var ve *ValidationError
		if !errors.As(verr, &ve) {
			return nil, verr
		}
		for _, fe := range ve.Errors {
			if !d.coveredByFailure(fe.Path) {
				d.errs = append(d.errs, fe)
			}
		}
	}
	if len(d.errs) == 0 {
		return r, nil
	}
	for i := range d.errs {
		if d.errs[i].Line == 0 {
			d.errs[i].Line = d.lineOf(d.errs[i].Path)
		}
	}
	sortErrors(d.errs)
	return nil, &ValidationError{Errors: d.errs}
}

// sortErrors orders problems as they appear in the document, so that the list reads top
// to bottom; the sort is stable so problems on one line keep the order they were found in.
func sortErrors(errs []FieldError) {
	sort.SliceStable(errs, func(i, j int) bool {
		li, lj := errs[i].Line, errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0 // problems without a line go last
		}
		return li < lj
	})
}

// decoder walks the generic tree against the schema.
type decoder struct {
	errs []FieldError
	// lines maps a field path to its line, to give grammar problems a line too.
	lines map[string]int
	// failed holds the paths that could not be decoded at all.
	failed map[string]bool
}

func (d *decoder) fail(path, code string, n *node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.line
	}
	d.errs = append(d.errs, FieldError{Path: path, Code: code, Message: fmt.Sprintf(format, args...), Line: line})
	d.failed[path] = true
}

func (d *decoder) coveredByFailure(path string) bool {
	if d.failed[""] {
		return true
	}
	for p := path; ; {
		if d.failed[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return false
		}
		p = p[:i]
	}
}

func (d *decoder) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return 0
		}
		p = p[:i]
	}
	return 0
}

// object walks a mapping: each known key's value goes to its handler; unknown keys are
// reported with the nearest known name as a hint. A null value counts as absent.
func (d *decoder) object(n *node, path string, handlers map[string]func(*node, string)) bool {
	if n.kind != kindMap {
		d.fail(path, CodeWrongType, n, "must be a mapping, not %s", n.kind)
		return false
	}
	for i, k := range n.keys {
		v := n.vals[i]
		p := field(path, k)
		d.lines[p] = v.line
		h, ok := handlers[k]
		if !ok {
			names := make([]string, 0, len(handlers))
			for name := range handlers {
				names = append(names, name)
			}
			msg := "unknown field"
			if s := nearest(k, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			d.fail(p, CodeUnknownField, v, "%s", msg)
			continue
		}
		if v.kind == kindNull {
			continue
		}
		h(v, p)
	}
	return true
}

func (d *decoder) str(n *node, path string) string {
	if n.kind != kindString {
		d.fail(path, CodeWrongType, n, "must be a string, not %s (quote it)", n.kind)
		return ""
	}
	return n.text
}

func (d *decoder) boolean(n *node, path string) bool {
	if n.kind != kindBool {
		d.fail(path, CodeWrongType, n, "must be true or false, not %s", n.kind)
		return false
	}
	return n.b
}

func (d *decoder) integer(n *node, path string) int {
	const limit = 1 << 31
	if n.kind != kindInt || n.i >= limit || n.i <= -limit {
		d.fail(path, CodeWrongType, n, "must be a small integer, not %s", n.kind)
		return 0
	}
	return int(n.i)
}

func (d *decoder) list(n *node, path string, each func(*node, string)) {
	if n.kind != kindList {
		d.fail(path, CodeWrongType, n, "must be a list, not %s", n.kind)
		return
	}
	for i, item := range n.items {
		p := index(path, i)
		d.lines[p] = item.line
		each(item, p)
	}
}

func (d *decoder) strList(n *node, path string) []string {
	out := []string{}
	d.list(n, path, func(item *node, p string) {
		// Keep a placeholder for a bad item so that later indices still name the right entry.
		out = append(out, d.str(item, p))
	})
	return out
}

func (d *decoder) recipe(n *node) *Recipe {
	r := &Recipe{}
	present := map[string]bool{}
	set := func(name string, h func(*node, string)) func(*node, string) {
		return func(v *node, p string) { present[name] = true; h(v, p) }
	}
	ok := d.object(n, "", map[string]func(*node, string){
		"apiVersion":  set("apiVersion", func(v *node, p string) { r.APIVersion = d.str(v, p) }),
		"name":        set("name", func(v *node, p string) { r.Name = d.str(v, p) }),
		"description": func(v *node, p string) { r.Description = d.str(v, p) },
		"base":        set("base", func(v *node, p string) { d.base(v, p, &r.Base) }),
		"packages":    func(v *node, p string) { r.Packages = d.strList(v, p) },
		"layers":      func(v *node, p string) { r.Layers = d.strList(v, p) },
		"files": func(v *node, p string) {
			r.Files = []File{}
			d.list(v, p, func(item *node, ip string) { r.Files = append(r.Files, d.file(item, ip)) })
		},
		"users": func(v *node, p string) {
			r.Users = []User{}
			d.list(v, p, func(item *node, ip string) { r.Users = append(r.Users, d.user(item, ip)) })
		},
		"hostname": func(v *node, p string) { r.Hostname = d.str(v, p) },
		"locale":   func(v *node, p string) { r.Locale = d.str(v, p) },
		"timezone": func(v *node, p string) { r.Timezone = d.str(v, p) },
		"keyboard": func(v *node, p string) {
			d.object(v, p, map[string]func(*node, string){
				"layout":  func(v *node, p string) { r.Keyboard.Layout = d.str(v, p) },
				"variant": func(v *node, p string) { r.Keyboard.Variant = d.str(v, p) },
			})
		},
		"services": func(v *node, p string) {
			d.object(v, p, map[string]func(*node, string){
				"enable":  func(v *node, p string) { r.Services.Enable = d.strList(v, p) },
				"disable": func(v *node, p string) { r.Services.Disable = d.strList(v, p) },
			})
		},
		"kernel": func(v *node, p string) {
			d.object(v, p, map[string]func(*node, string){
				"cmdline": func(v *node, p string) { r.Kernel.Cmdline = d.strList(v, p) },
			})
		},
		"boot": func(v *node, p string) { r.Boot = d.strList(v, p) },
		"image": func(v *node, p string) {
			d.object(v, p, map[string]func(*node, string){
				"compression":      func(v *node, p string) { r.Image.Compression = d.str(v, p) },
				"compressionLevel": func(v *node, p string) { r.Image.CompressionLevel = d.integer(v, p) },
			})
		},
		"scripts": func(v *node, p string) {
			r.Scripts = []Script{}
			d.list(v, p, func(item *node, ip string) { r.Scripts = append(r.Scripts, d.script(item, ip)) })
		},
	})
	if !ok {
		// The document is not a mapping at all: listing every missing field would only bury
		// the one real problem.
		d.failed[""] = true
	}
	return r
}

func (d *decoder) base(n *node, path string, b *Base) {
	d.object(n, path, map[string]func(*node, string){
		"distribution":   func(v *node, p string) { b.Distribution = d.str(v, p) },
		"release":        func(v *node, p string) { b.Release = d.str(v, p) },
		"architecture":   func(v *node, p string) { b.Architecture = d.str(v, p) },
		"mirror":         func(v *node, p string) { b.Mirror = d.str(v, p) },
		"securityMirror": func(v *node, p string) { b.SecurityMirror = d.str(v, p) },
		"snapshot":       func(v *node, p string) { b.Snapshot = d.str(v, p) },
		"components":     func(v *node, p string) { b.Components = d.strList(v, p) },
		"updates": func(v *node, p string) {
			u := d.boolean(v, p)
			b.Updates = &u
		},
	})
}

func (d *decoder) file(n *node, path string) File {
	var f File
	d.object(n, path, map[string]func(*node, string){
		"path": func(v *node, p string) { f.Path = d.str(v, p) },
		"content": func(v *node, p string) {
			s := d.str(v, p)
			f.Content = &s
		},
		"contentBase64": func(v *node, p string) {
			s := d.str(v, p)
			f.ContentBase64 = &s
		},
		"mode": func(v *node, p string) {
			// An unquoted YAML `mode: 0644` is an integer to YAML; its source text is what
			// the user meant, so it is taken as the octal string it reads as.
			if v.kind == kindInt {
				f.Mode = v.text
				return
			}
			f.Mode = d.str(v, p)
		},
		"owner": func(v *node, p string) { f.Owner = d.str(v, p) },
	})
	return f
}

func (d *decoder) user(n *node, path string) User {
	var u User
	d.object(n, path, map[string]func(*node, string){
		"name":         func(v *node, p string) { u.Name = d.str(v, p) },
		"passwordHash": func(v *node, p string) { u.PasswordHash = d.str(v, p) },
		"groups":       func(v *node, p string) { u.Groups = d.strList(v, p) },
		"sudo":         func(v *node, p string) { u.Sudo = d.boolean(v, p) },
		"sshKeys":      func(v *node, p string) { u.SSHKeys = d.strList(v, p) },
		"shell":        func(v *node, p string) { u.Shell = d.str(v, p) },
	})
	return u
}

func (d *decoder) script(n *node, path string) Script {
	var s Script
	d.object(n, path, map[string]func(*node, string){
		"name": func(v *node, p string) { s.Name = d.str(v, p) },
		"run":  func(v *node, p string) { s.Run = d.str(v, p) },
	})
	return s
}

// nearest returns the candidate closest to s, if it is close enough to be a likely typo.
func nearest(s string, candidates []string) string {
	return spelling.Nearest(s, slices.Values(candidates))
}
