package recipe

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzParse: Parse never panics, every failure is a well-formed ValidationError, and the
// canonical form of a recipe parses back to the very same canonical bytes.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte(minimalYAML))
	f.Add([]byte(`{"apiVersion":"debate/v1","name":"x","base":{"distribution":"debian","release":"bookworm"},"files":[{"path":"/a","contentBase64":"/w=="}]}`))
	f.Add([]byte(minimalYAML + "packages: &a [x]\nlayers: *a\n"))
	f.Add([]byte(minimalYAML + "files:\n  - path: /a\n    content: \"\\x01\\u2028\"\n    mode: 0755\n"))
	f.Add([]byte(minimalYAML + "users:\n  - name: root\n    sshKeys: [\"" + testEd25519 + "\"]\n"))
	f.Add([]byte("{\"a\": [1, 2, {\"b\": null}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []Format{YAML, JSON} {
			if _, err := Parse(data, format); err != nil {
				checkValidationError(t, err)
			}
		}
		r, err := Parse(data, Auto)
		if err != nil {
			checkValidationError(t, err)
			return
		}
		c1, err := r.Canonical()
		if err != nil {
			t.Fatalf("a parsed recipe has no canonical form: %v", err)
		}
		r2, err := Parse(c1, JSON)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c1)
		}
		c2, err := r2.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", c1, c2)
		}
		if r.Hash() != r2.Hash() {
			t.Fatal("hash changed through the canonical form")
		}
	})
}

func checkValidationError(t *testing.T, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || len(ve.Errors) == 0 {
		t.Fatalf("not a ValidationError: %T %v", err, err)
	}
	for _, e := range ve.Errors {
		if e.Code == "" || e.Message == "" {
			t.Fatalf("incomplete FieldError %+v", e)
		}
	}
}
