package recipe

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error that says a recipe is wrong, as opposed
// to an error reading it. A *ValidationError always matches it.
var ErrInvalid = errors.New("invalid recipe")

// ErrTooLarge is matched by the error for a recipe document over MaxRecipeBytes. It also
// matches ErrInvalid, so that callers that only care about "bad input" need one check.
var ErrTooLarge = errors.New("recipe too large")

// Stable machine codes of FieldError. Clients may switch on them; never rename one.
const (
	CodeSyntax       = "syntax"        // the document is not well-formed YAML or JSON
	CodeTooLarge     = "too_large"     // the whole document is over MaxRecipeBytes
	CodeRequired     = "required"      // a required field is missing or empty
	CodeUnknownField = "unknown_field" // a field the schema does not have
	CodeWrongType    = "wrong_type"    // e.g. a number where a string belongs
	CodeInvalid      = "invalid"       // the value breaks the field's grammar
	CodeUnsupported  = "unsupported"   // well-formed, but not something this builder supports
	CodeTooLong      = "too_long"      // a value over its size limit
	CodeTooMany      = "too_many"      // a list over its entry limit
	CodeDuplicate    = "duplicate"     // a repeated entry where order or identity matters
	CodeConflict     = "conflict"      // two fields that contradict each other
)

// FieldError is one problem with one field of a recipe.
type FieldError struct {
	// Path names the field like `files[2].path`, `users[0].sshKeys[1]` or `base.release`.
	// It is empty for a problem with the document as a whole (syntax, size).
	Path string `json:"path"`
	// Code is one of the Code* constants (or a code of a package that builds on recipes,
	// such as resolve's "unknown_layer").
	Code string `json:"code"`
	// Message says what is wrong and, where it helps, what to write instead.
	Message string `json:"message"`
	// Line is the 1-based line of the field in the source document, when known.
	Line int `json:"line,omitempty"`
}

// String renders the error as `path: message`.
func (e FieldError) String() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// ValidationError carries every problem found in a recipe, so that a user fixes them all
// in one round instead of one per attempt.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// Error lists every problem, one per line, as `path: message`.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true for every ValidationError, and
// errors.Is(err, ErrTooLarge) true when the document was over the size limit.
func (e *ValidationError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return true
	case ErrTooLarge:
		for _, fe := range e.Errors {
			if fe.Code == CodeTooLarge {
				return true
			}
		}
	}
	return false
}

// problems collects FieldErrors while a recipe is checked.
type problems struct {
	errs []FieldError
}

func (p *problems) add(path, code, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

// err returns nil when nothing was found, else a *ValidationError.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: p.errs}
}

// index renders a list element's path: index("files", 2) == "files[2]".
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// field renders a member's path: field("", "base") == "base", field("base", "release") ==
// "base.release".
func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
