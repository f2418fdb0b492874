// Package debian reads the Debian archive's control formats: deb822 paragraphs as found in
// Packages indexes, Release files and dpkg's status file.
package debian

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Field is one field of a paragraph; Value keeps continuation lines (joined with "\n",
// leading space preserved) so that a paragraph can be written back unchanged.
type Field struct {
	Name  string
	Value string
}

// Paragraph is one deb822 stanza, fields in file order.
type Paragraph []Field

// Get returns a field's value (case-insensitive name, as the format defines) or "".
func (p Paragraph) Get(name string) string {
	for _, f := range p {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// With returns a copy with the named field set (replaced in place, or appended).
func (p Paragraph) With(name, value string) Paragraph {
	out := make(Paragraph, 0, len(p)+1)
	found := false
	for _, f := range p {
		if strings.EqualFold(f.Name, name) {
			f.Value, found = value, true
		}
		out = append(out, f)
	}
	if !found {
		out = append(out, Field{name, value})
	}
	return out
}

// WriteTo writes the paragraph followed by a blank line.
func (p Paragraph) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, f := range p {
		b.WriteString(f.Name)
		b.WriteString(":")
		if f.Value != "" && !strings.HasPrefix(f.Value, "\n") {
			b.WriteString(" ")
		}
		b.WriteString(f.Value)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// ReadParagraphs calls fn for each paragraph of r. It stops at fn's first error.
func ReadParagraphs(r io.Reader, fn func(Paragraph) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var cur Paragraph
	line := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		p := cur
		cur = nil
		return fn(p)
	}
	for sc.Scan() {
		line++
		t := sc.Text()
		switch {
		case strings.TrimSpace(t) == "":
			if err := flush(); err != nil {
				return err
			}
		case t[0] == ' ' || t[0] == '\t':
			if len(cur) == 0 {
				return fmt.Errorf("line %d: continuation line outside a field", line)
			}
			cur[len(cur)-1].Value += "\n" + t
		case t[0] == '#':
			// Comments are allowed in some deb822 files; they carry no data.
		default:
			name, value, ok := strings.Cut(t, ":")
			if !ok {
				return fmt.Errorf("line %d: expected \"Field: value\", got %q", line, t)
			}
			cur = append(cur, Field{Name: name, Value: strings.TrimSpace(value)})
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	return flush()
}
