package debian

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadRelation is matched by the error of ParseRelations for a malformed field.
var ErrBadRelation = errors.New("malformed relationship field")

// Relation operators (Debian Policy 7.1). The obsolete "<" and ">" mean "<=" and ">=",
// as dpkg reads them.
const (
	OpNone = ""
	OpLT   = "<<"
	OpLE   = "<="
	OpEQ   = "="
	OpGE   = ">="
	OpGT   = ">>"
)

// Relation is one package named in a relationship field: `name[:arch] [(op version)]`.
type Relation struct {
	Name string
	// ArchQual is the Multi-Arch qualifier after a colon ("any", "native", an arch), or "".
	ArchQual string
	Op       string // one of the Op* constants
	Version  string // empty when Op is OpNone
}

// String renders the relation as the archive writes it.
func (r Relation) String() string {
	s := r.Name
	if r.ArchQual != "" {
		s += ":" + r.ArchQual
	}
	if r.Op != OpNone {
		s += " (" + r.Op + " " + r.Version + ")"
	}
	return s
}

// SatisfiedBy reports whether a package (or a versioned Provides) at version v meets the
// relation's version constraint. v == "" stands for an unversioned Provides, which only
// meets an unversioned relation.
func (r Relation) SatisfiedBy(v string) bool {
	if r.Op == OpNone {
		return true
	}
	if v == "" {
		return false
	}
	c := CompareVersions(v, r.Version)
	switch r.Op {
	case OpLT:
		return c < 0
	case OpLE:
		return c <= 0
	case OpEQ:
		return c == 0
	case OpGE:
		return c >= 0
	case OpGT:
		return c > 0
	}
	return false
}

// ParseRelations parses a field such as Depends: comma-separated groups of alternatives
// separated by "|". Architecture restrictions ("[amd64 !i386]") and build profiles
// ("<!nocheck>"), which only source packages carry, are checked for form and dropped.
func ParseRelations(field string) ([][]Relation, error) {
	var out [][]Relation
	field = strings.TrimSpace(field)
	if field == "" {
		return nil, nil
	}
	for _, group := range strings.Split(field, ",") {
		group = strings.TrimSpace(group)
		if group == "" {
			// A trailing comma is tolerated by dpkg; an empty group in the middle is not,
			// but the archive has neither, and being lenient here costs nothing.
			continue
		}
		var alts []Relation
		for _, alt := range strings.Split(group, "|") {
			r, err := parseRelation(alt)
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %w", ErrBadRelation, strings.TrimSpace(group), err)
			}
			alts = append(alts, r)
		}
		out = append(out, alts)
	}
	return out, nil
}

// ParseRelationList parses a field without alternatives (Conflicts, Breaks, Provides).
func ParseRelationList(field string) ([]Relation, error) {
	groups, err := ParseRelations(field)
	if err != nil {
		return nil, err
	}
	out := make([]Relation, 0, len(groups))
	for _, g := range groups {
		if len(g) != 1 {
			return nil, fmt.Errorf("%w: alternatives (|) are not allowed here: %q", ErrBadRelation, field)
		}
		out = append(out, g[0])
	}
	return out, nil
}

func parseRelation(s string) (Relation, error) {
	var r Relation
	s = strings.TrimSpace(s)
	end := strings.IndexAny(s, " \t([<")
	if end < 0 {
		end = len(s)
	}
	name, rest := s[:end], strings.TrimSpace(s[end:])
	// What may follow the name: one version constraint, then architecture restrictions
	// ("[amd64 !i386]") and build profiles ("<!nocheck>"), which only source packages
	// carry: they are checked for form and dropped.
	for rest != "" {
		var closer byte
		switch rest[0] {
		case '(':
			closer = ')'
		case '[':
			closer = ']'
		case '<':
			closer = '>'
		}
		j := strings.IndexByte(rest, closer)
		if closer == 0 || j < 0 {
			return r, fmt.Errorf("unexpected %q", rest)
		}
		if rest[0] == '(' {
			if r.Op != OpNone {
				return r, errors.New("two version constraints")
			}
			c := strings.TrimSpace(rest[1:j])
			op := ""
			for _, o := range []string{"<<", "<=", ">=", ">>", "=", "<", ">"} {
				if strings.HasPrefix(c, o) {
					op = o
					break
				}
			}
			if op == "" {
				return r, fmt.Errorf("unknown operator in %q", c)
			}
			v := strings.TrimSpace(c[len(op):])
			if v == "" || strings.ContainsAny(v, " \t") {
				return r, fmt.Errorf("bad version in %q", c)
			}
			switch op {
			case "<":
				op = OpLE
			case ">":
				op = OpGE
			}
			r.Op, r.Version = op, v
		} else if rest[0] == '<' && strings.HasPrefix(rest, "<<") {
			return r, fmt.Errorf("unexpected %q", rest)
		}
		rest = strings.TrimSpace(rest[j+1:])
	}
	if n, q, ok := strings.Cut(name, ":"); ok {
		name, r.ArchQual = n, q
		if q == "" {
			return r, errors.New("empty architecture qualifier")
		}
	}
	if !validPackageName(name) {
		return r, fmt.Errorf("bad package name %q", name)
	}
	r.Name = name
	return r, nil
}

// validPackageName is Debian Policy 5.6.7 (lowercase letters, digits, + - .; two or more
// characters, starting with a letter or digit).
func validPackageName(s string) bool {
	if len(s) < 2 || !(isDigit(s[0]) || (s[0] >= 'a' && s[0] <= 'z')) {
		return false
	}
	for _, c := range []byte(s) {
		if !(isDigit(c) || (c >= 'a' && c <= 'z') || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
